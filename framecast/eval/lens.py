"""The generation lens: what does the model believe the final clip is, at every stage?

After the "logit lens" of language-model interpretability (nostalgebraist 2020): every layer's
residual stream is read out through the model's own final norm and output head.

    diffusion, hybrid   the predicted clean clip x0 at every sampling step; for one step, x0 read
                        out of every transformer layer; the noise-level matrix of the run. A latent
                        model's x0 is decoded to frames through its codec (`model.from_latent`)
    autoregressive      for the finished clip, the tokens each layer's stream would predict,
                        decoded to frames (the order tokens were committed is not drawn yet)

Writes PNG contact sheets (rows = steps or layers, columns = frames) and an HTML page.
"""

from __future__ import annotations

import contextlib
import html
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from framecast.video import contact_sheet, from_uint8, to_uint8


@contextlib.contextmanager
def block_outputs(backbone):
    """Collect the residual stream after every transformer block during the calls inside."""
    streams: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, a, o: streams.append(o)) for b in backbone.blocks]
    try:
        yield streams
    finally:
        for h in hooks:
            h.remove()


def _rows_sheet(rows: list[np.ndarray], scale: int = 2) -> np.ndarray:
    """rows of (T, H, W, 3) -> one sheet, a row each. A hybrid model with a cache shows its steps
    only the frames made so far: shorter rows are filled out with dark grey frames."""
    T = max(r.shape[0] for r in rows)
    pad = lambda r: np.concatenate([r, np.full((T - r.shape[0], *r.shape[1:]), 32, np.uint8)]) if r.shape[0] < T else r  # noqa: E731
    return contact_sheet(np.concatenate([pad(r) for r in rows]), columns=T, scale=scale)


@torch.no_grad()
def frames_of(model, x0_BTCHW: torch.Tensor) -> np.ndarray:
    """The first clip of a prediction in the model's representation (pixels, or latents decoded
    by its codec) as (T, H, W, 3) uint8."""
    decode = getattr(model, "from_latent", None)
    x = decode(x0_BTCHW[:1]) if decode is not None else x0_BTCHW[:1]
    return to_uint8(x.float().clamp(-1, 1))


@torch.no_grad()
def diffusion_lens(pipe, prompt: str, *, seed: int = 0, layer_step: int | None = None, **kw) -> dict:
    """x0 at every step (via the step callback) and, at `layer_step`, x0 from every layer."""
    model = pipe.model
    per_step: list[np.ndarray] = []
    sigmas: list[float] = []

    def cb(p, i, sigma, tensors):
        per_step.append(frames_of(model, tensors["x0"]))
        sigmas.append(float(torch.as_tensor(sigma).float().max()))
        return tensors  # unchanged: the lens only looks

    out = pipe(prompt, generator=torch.Generator().manual_seed(seed), callback_on_step_end=cb, **kw)
    final = out.frames[0]
    # Layer readout at one step: re-run the backbone on that step's input and read every layer.
    captured: dict[str, torch.Tensor] = {}
    layer_step = len(per_step) // 2 if layer_step is None else layer_step

    def grab(p, i, sigma, tensors):
        if i == layer_step - 1 or (layer_step == 0 and i == -1):
            captured["x"], captured["sigma"] = tensors["latents"][:1].clone(), sigma
        return tensors

    pipe(prompt, generator=torch.Generator().manual_seed(seed), callback_on_step_end=grab, **kw)
    layers = []
    if "x" in captured:
        layers = layer_readout(model, captured["x"], captured["sigma"], prompt)
    return {"steps": per_step, "sigmas": sigmas, "layers": layers, "layer_step": layer_step, "final": final}


@torch.no_grad()
def layer_readout(model, x_BTCHW: torch.Tensor, sigma, prompt: str) -> list[np.ndarray]:
    """x0 read out of the residual stream after every block, for one noisy clip in the model's
    representation (decoded to frames for a latent model)."""
    bb = model.backbone
    dev = next(model.parameters()).device
    x_BTCHW = x_BTCHW.to(dev)
    text = model.text.encode([prompt])
    T = x_BTCHW.shape[1]
    grid = bb.grid(T, x_BTCHW.shape[3], x_BTCHW.shape[4])
    level = torch.as_tensor(sigma, dtype=torch.float32).reshape(1, -1).to(dev)
    level = level.expand(1, grid[0]) if level.numel() == 1 else level[:, : grid[0]]
    kw = {"mask": model.config.mask_spec()} if hasattr(model.config, "mask_spec") else {}
    with block_outputs(bb) as streams:
        bb(x_BTCHW, level, text, **kw)
    cond = bb.condition(level, text)
    out = []
    for h in streams:
        pred = bb.unpatchify(bb.readout(h, cond.to(h.dtype)), grid).float()
        if model.config.prediction != "x0":
            pred = x_BTCHW - model.per_pixel(level, T) * pred
        out.append(frames_of(model, pred))
    return out


@torch.no_grad()
def ar_lens(pipe, prompt: str, *, seed: int = 0, **kw) -> dict:
    """Per-layer token predictions for the generated clip."""
    model = pipe.model
    out = pipe(prompt, generator=torch.Generator().manual_seed(seed), **kw)
    final = out.frames[0]
    dev = next(model.parameters()).device
    clip = from_uint8(final)[None].to(dev)
    codes = model.tokenizer.encode(clip).reshape(1, -1)
    T = clip.shape[1]
    text = model.text.encode([prompt])
    bb = model.backbone
    from framecast.nn.attention import MaskSpec

    if model.config.order == "raster":
        ids, level = model.raster_inputs(codes, T), torch.zeros(1, 1, device=dev)
        run = lambda: model._logits(ids, model.positions(T, dev), level, text, mask=MaskSpec("causal"))  # noqa: E731
    else:  # what each layer believes with every token of the last token-frame hidden
        ids = codes.clone()
        ids[:, -model.tokens_per_chunk:] = model.mask_id
        F_ = T // model.frames_per_chunk
        level = torch.cat([torch.zeros(1, F_ - 1), torch.ones(1, 1)], 1).to(dev)
        run = lambda: model._chunk_logits(ids, level, text, mask=MaskSpec("frame-causal"))  # noqa: E731
    with block_outputs(bb) as streams:
        run()
    layers = []
    for h in streams:
        pred = model.stream_logits(h, level, text, T).argmax(-1)
        layers.append(to_uint8(model.tokenizer.decode(pred.view(1, T, *model.grid_hw))[0].clamp(-1, 1)))
    return {"layers": layers, "final": final, "steps": [], "sigmas": []}


def write_lens(result: dict, out_dir: Path, title: str, matrix_png: Path | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if result["steps"]:
        Image.fromarray(_rows_sheet(result["steps"])).save(out_dir / "steps.png")
        parts.append(f"<h2>Predicted clean clip at every sampling step</h2><p>rows: steps 0..{len(result['steps']) - 1} "
                     f"(dark grey: frames not begun yet; highest noise level after each: {', '.join(f'{s:.2f}' for s in result['sigmas'])}); columns: frames</p>"
                     "<img src='steps.png'>")
    if result["layers"]:
        Image.fromarray(_rows_sheet(result["layers"])).save(out_dir / "layers.png")
        at = f" at step {result['layer_step']}" if "layer_step" in result else ""
        parts.append(f"<h2>Read out of every layer{at}</h2><p>rows: layers 1..{len(result['layers'])}; columns: frames</p>"
                     "<img src='layers.png'>")
    Image.fromarray(_rows_sheet([result["final"]])).save(out_dir / "final.png")
    parts.append("<h2>The generated clip</h2><img src='final.png'>")
    if matrix_png is not None:
        parts.append(f"<h2>Noise-level matrix of the run</h2><img src='{matrix_png.name}'>")
    page = out_dir / "index.html"
    page.write_text("<!doctype html><meta charset='utf-8'><title>framecast lens</title>"
                    "<style>body{font-family:sans-serif;background:#222;color:#ddd} img{image-rendering:pixelated;max-width:100%}</style>"
                    + "\n".join(parts))
    return page
