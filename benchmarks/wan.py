"""The Wan transformer on framecast's core: seconds per denoising step against diffusers'
WanTransformer3DModel (same random weights, same precision, same process), and the per-frame cost
of block-causal streaming with the KV cache against recomputing the context at every step.

    python benchmarks/wan.py                      # CPU: width 1536, 4 layers, 33 frames of 256x256
    python benchmarks/wan.py --device cuda        # GPU: the 1.3B configuration, 81 frames of 480x832

A denoising step is one pass over [prompt; negative prompt] (batch 2, as guided sampling runs it)
with 512 text tokens: framecast's as its Wan generator runs it (the text embedded and each block's
cross-attention keys and values computed once per generation, `prepare_text`), diffusers' as
WanPipeline calls its transformer (from the text states at every step); framecast's forward from
the text states is reported too. Streaming generates `--stream-frames` latent frames in chunks of 3 with
Self-Forcing's four timesteps and no guidance (a distilled model): with the KV cache each chunk
attends to the cached context (computed once, clean, then kept); without it every step recomputes
the context under the block-causal mask. Both give the same latents (tests/test_wan_pipeline.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from report import write_report
from framecast.generators.wan_sampling import CausalRun, causal_chunks, few_step_sigmas
from framecast.nn.wan import WanTransformer, WanTransformerConfig, load_wan_weights

SELF_FORCING_STEPS = [1000, 750, 500, 250]


def configs(device: str) -> dict:
    if device == "cuda":  # Wan 2.1 T2V 1.3B at its own size
        return dict(transformer=dict(num_layers=30), frames=81, height=480, width=832, dtype=torch.bfloat16, stream_frames=21,
                    reps=3)
    return dict(transformer=dict(num_layers=4), frames=33, height=256, width=256, dtype=torch.float32, stream_frames=9, reps=2)


def build(config: WanTransformerConfig, device: str, dtype: torch.dtype):
    """diffusers' model with random weights and framecast's loaded from its state dict."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    ref = WanTransformer3DModel(**{k: v for k, v in config.to_dict().items() if k not in ("num_frame_per_block",
                                                                                         "inject_sample_info")})
    with torch.no_grad():
        for p in ref.parameters():  # diffusers zero-initialises some layers: give every weight a value
            p.normal_(0, 0.02)
    ours = WanTransformer(config)
    load_wan_weights(ours, ref.state_dict(), "diffusers")
    ref, ours = ref.to(device).eval(), ours.to(device).eval()
    if dtype != torch.float32:
        ref.to(dtype)  # diffusers keeps its _keep_in_fp32_modules only through from_pretrained
        ours.cast(dtype)
    return ref, ours


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def medians(fns: dict, reps: int, device: str) -> dict:
    """Median seconds of each function after one warm-up call each, the functions taking turns (a
    shared machine's slow spells then fall on both)."""
    times = {name: [] for name in fns}
    for i in range(reps + 1):
        for name, fn in fns.items():
            s = timed(fn, device)
            if i:
                times[name].append(s)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


@torch.no_grad()
def step_times(ref, ours, setup: dict, device: str) -> dict:
    F, h, w = (setup["frames"] - 1) // 4 + 1, setup["height"] // 8, setup["width"] // 8
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, F, h, w, generator=g).to(device, setup["dtype"])
    text = torch.randn(2, 512, 4096, generator=g).to(device, setup["dtype"])
    t = torch.tensor([700.0, 700.0], device=device)
    prepared = ours.prepare_text(text)  # once per generation, as the Wan generator does
    a = ref(x, t, text, return_dict=False)[0].float()
    b = ours(x, t, prepared).float()
    return {"latent_grid": [F, h, w], "tokens": F * (h // 2) * (w // 2),
            "max_abs_diff": float((a - b).abs().max()),
            **medians({"framecast_s_per_step": lambda: ours(x, t, prepared),
                       "diffusers_s_per_step": lambda: ref(x, t, text, return_dict=False),
                       "framecast_s_per_forward_from_text_states": lambda: ours(x, t, text)}, setup["reps"], device)}


@torch.no_grad()
def stream_times(ours, setup: dict, device: str) -> dict:
    F, h, w = setup["stream_frames"], setup["height"] // 8, setup["width"] // 8
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, F, 16, h, w, generator=g).to(device, setup["dtype"])
    text = ours.prepare_text(torch.randn(1, 512, 4096, generator=g).to(device, setup["dtype"]))
    sigmas = few_step_sigmas(SELF_FORCING_STEPS, 4, 5.0)
    out = {}
    for name, cached in (("kv_cache", True), ("recompute", False)):
        def run():
            r = CausalRun(ours, text, 1.0, block=3, sinks=0, window=0, use_cache=cached)
            return torch.cat(list(causal_chunks(r, x, sigmas, block=3, sampler="euler-stochastic",
                                                generator=torch.Generator().manual_seed(3))), 1)
        s = timed(run, device)  # one run each: the model is warm from the step timings
        out[f"{name}_s_per_latent_frame"] = s / F
        out[f"{name}_video_fps"] = (1 + 4 * (F - 1)) / s
    out["latent_frames"] = F
    return out


def table(result: dict) -> list[str]:
    s, st = result["step"], result["stream"]
    speed = s["diffusers_s_per_step"] / s["framecast_s_per_step"]
    rows = ["| measure | framecast | diffusers / recompute |", "|---|---|---|",
            f"| seconds per denoising step ({s['tokens']} tokens, batch 2) | {s['framecast_s_per_step']:.2f} | "
            f"{s['diffusers_s_per_step']:.2f} (framecast {speed:.2f}x) |",
            f"| the same, framecast's forward from the text states (no text prepared) | "
            f"{s['framecast_s_per_forward_from_text_states']:.2f} | |",
            f"| streaming: seconds per latent frame, KV cache vs recompute ({st['latent_frames']} latent frames) | "
            f"{st['kv_cache_s_per_latent_frame']:.2f} | {st['recompute_s_per_latent_frame']:.2f} |",
            f"| streaming: video frames per second | {st['kv_cache_video_fps']:.3f} | {st['recompute_video_fps']:.3f} |"]
    if "peak_memory_gib" in result:
        rows.append(f"| peak GPU memory of a step (GiB) | {result['peak_memory_gib']:.1f} | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/wan.json"))
    parser.add_argument("--notes", default="")
    parser.add_argument("--layers", type=int, help="override the layer count (a quick check)")
    parser.add_argument("--size", type=int, help="override height and width (a quick check)")
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    setup = configs(a.device)
    if a.layers:
        setup["transformer"]["num_layers"] = a.layers
    if a.size:
        setup.update(height=a.size, width=a.size)
    config = WanTransformerConfig(**setup["transformer"])
    ref, ours = build(config, a.device, setup["dtype"])
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = {"config": {**config.to_dict(), "frames": setup["frames"], "height": setup["height"], "width": setup["width"],
                         "dtype": str(setup["dtype"]).removeprefix("torch."), "threads": a.threads},
              "step": step_times(ref, ours, setup, a.device)}
    if a.device == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del ref
    result["stream"] = stream_times(ours, setup, a.device)
    result["notes"] = a.notes
    write_report(a.output, result, table(result), device=a.device,
                 precision=str(setup["dtype"]).removeprefix("torch."))
    print("\n".join(table(result)))


if __name__ == "__main__":
    main()
