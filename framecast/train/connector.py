"""Teach a word-encoder model plain English: distil its word encoder into a pretrained encoder + connector.

    python -m framecast.train.connector --model shapes-diffusion --output runs/shapes-diffusion-text
    python -m framecast.train.connector --model runs/shapes-diffusion-text --calibrate   # the threshold only

The generator is left as it is. A frozen pretrained encoder (all-MiniLM-L6-v2 by default) reads
free-text descriptions of Shapes scenes written by the caption augmentation
(`framecast.data.phrasing`); a small connector learns to write, from its states, the context the
model's own word encoder writes for the canonical caption the description means (teacher-student
distillation of a text encoder, as AltCLIP / AltDiffusion swap the text encoder of a frozen
generator). The loss is the squared error of the context states and their mean (the pooled
vector) and a cross-entropy on how many states are real. The output is a new model folder whose
config names the pretrained encoder (`"text_kind": "pretrained"`); the word encoder stays inside it
as the teacher, which also gives the unconditional context for guidance.

`--target connector` distils from the folder's own connector instead: the new connector learns to
write, for any description, the context the present one writes for the canonical caption, for a
model whose backbone learned that context (a few-step student; docs/text.md gives what it did for
one).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from framecast.data.phrasing import describe
from framecast.data.shapes import COLOURS, DIRECTIONS, HELD_OUT_PAIRS, SHAPES, SIZES, parse_caption, sample_scene
from framecast.generators import from_pretrained, save_pretrained
from framecast.generators.io import write_atomic
from framecast.text.encoder import TextEmbedding, WordTextEncoder
from framecast.text.pretrained import DEFAULT_SOURCE, ConnectedTextEncoder, FrozenEncoder, PretrainedEncoderConfig

POOL_SEED = 10**7  # scenes of the training pool: far from the evaluation's seeds 0-99


def encode_pool(frozen: FrozenEncoder, texts: list[str], batch: int = 256, desc: str = "encode") -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder states of every text, padded: (N, T, D) in bfloat16 and the mask (N, T)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of like lengths: little padding
    rows = [None] * len(texts)
    for i in tqdm(range(0, len(texts), batch), desc=desc, unit="batch"):
        for j, row in zip(order[i : i + batch], frozen._run([texts[j] for j in order[i : i + batch]])):
            rows[j] = row
    T = max(s.shape[0] for s, _ in rows)
    states = torch.zeros(len(rows), T, frozen.width, dtype=torch.bfloat16)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for i, (s, _) in enumerate(rows):
        states[i, : s.shape[0]], mask[i, : s.shape[0]] = s, True
    return states, mask


def cached_pool(frozen: FrozenEncoder, n: int, seed: int, cache: Path | None, desc: str = "encode"):
    """(states, mask, texts, captions) of n descriptions, read from `cache` when it was encoded before
    by the same encoder (the three families share one pool)."""
    texts, captions = describe_pool(n, seed)
    if cache is None:
        return (*encode_pool(frozen, texts, desc=desc), texts, captions)
    key = "".join(ch if ch.isalnum() else "-" for ch in frozen.source)
    path = Path(cache) / f"pool-{key}-{n}-{seed}.safetensors"
    if path.is_file():
        tensors = load_file(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta["texts"] == texts:
            return tensors["states"], tensors["mask"], texts, captions
    states, mask = encode_pool(frozen, texts, desc=desc)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps({"texts": texts})))
    write_atomic(path, lambda p: save_file({"states": states, "mask": mask}, p))
    return states, mask, texts, captions


def describe_pool(n: int, seed: int, **kw) -> tuple[list[str], list[str]]:
    """n (free text, canonical caption) pairs over training-split scenes."""
    rng = random.Random(seed)
    pairs = [describe(parse_caption(sample_scene(seed + i).caption), rng, **kw) for i in range(n)]
    return [t for t, _ in pairs], [c for _, c in pairs]


def caption_bank(two_object: int = 400, seed: int = POOL_SEED + 5 * 10**6) -> list[str]:
    """Captions the model knows: every one-object caption of the training split and a sample of two."""
    one = [f"a {z} {c} {s} moves {d}" for z in SIZES for c in COLOURS for s in SHAPES for d in DIRECTIONS if (c, s) not in HELD_OUT_PAIRS]
    two = sorted({c for c in (sample_scene(seed + i).caption for i in range(8 * two_object)) if " and " in c})
    random.Random(seed).shuffle(two)
    return one + two[:two_object]


class Targets:
    """The teacher's context for each canonical caption, padded to the connector's slots."""

    def __init__(self, teacher: WordTextEncoder, slots: int):
        self.teacher, self.slots, self.cache = teacher.eval(), slots, {}

    def __call__(self, captions: list[str]) -> TextEmbedding:
        new = [c for c in dict.fromkeys(captions) if c not in self.cache]
        if new:
            with torch.no_grad():
                emb = self.teacher.encode(new)
            for i, c in enumerate(new):
                n = int(emb.mask_BL[i].sum())
                self.cache[c] = (emb.tokens_BLD[i, :n].float(), emb.pooled_BD[i].float())
        tokens = torch.zeros(len(captions), self.slots, self.teacher.width)
        mask = torch.zeros(len(captions), self.slots, dtype=torch.bool)
        for i, c in enumerate(captions):
            t = self.cache[c][0]
            tokens[i, : t.shape[0]], mask[i, : t.shape[0]] = t, True
        return TextEmbedding(tokens_BLD=tokens, mask_BL=mask, pooled_BD=torch.stack([self.cache[c][1] for c in captions]))


def distill_loss(encoder: ConnectedTextEncoder, states, mask, target: TextEmbedding) -> tuple[torch.Tensor, dict]:
    """Squared error of the real context states and of the pooled vector, plus the keep cross-entropy."""
    tokens, keep = encoder.connector(states.float(), mask)
    m = target.mask_BL.unsqueeze(-1).float()
    token_err = ((tokens - target.tokens_BLD) ** 2 * m).sum() / (m.sum() * tokens.shape[-1])
    pooled = (tokens * m).sum(1) / m.sum(1)
    pooled_err = ((pooled - target.pooled_BD) ** 2).mean()
    keep_err = torch.nn.functional.binary_cross_entropy_with_logits(keep, target.mask_BL.float())
    length_right = ((keep > 0).sum(1) == target.mask_BL.sum(1)).float().mean()
    parts = {"tokens": token_err, "pooled": pooled_err, "keep": keep_err, "length_right": length_right}
    return token_err + pooled_err + 0.1 * keep_err, {k: float(v.detach()) for k, v in parts.items()}


def train_connector(encoder: ConnectedTextEncoder, pool, targets: Targets, *, steps: int, batch: int, lr: float, seed: int,
                    log: list[dict]) -> None:
    states, mask, captions = pool
    opt = torch.optim.AdamW(encoder.connector.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    g = torch.Generator().manual_seed(seed)
    encoder.connector.train()
    bar = tqdm(range(steps), desc="distil", unit="step")
    for step in bar:
        idx = torch.randint(0, states.shape[0], (batch,), generator=g)
        loss, parts = distill_loss(encoder, states[idx], mask[idx], targets([captions[i] for i in idx.tolist()]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.connector.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log.append({"step": step, "loss": float(loss.detach()), **parts})
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", length=f"{parts['length_right']:.2f}")
    encoder.connector.eval()


def held_out_error(encoder: ConnectedTextEncoder, pool, targets: Targets) -> dict:
    states, mask, captions = pool
    with torch.no_grad():
        return distill_loss(encoder, states, mask, targets(captions))[1]


def ood_threshold(encoder: ConnectedTextEncoder, texts: list[str], quantile: float = 0.01) -> tuple[float, list[float]]:
    """A similarity below which a prompt is out of domain: the `quantile` of the nearest-caption
    similarity of in-domain descriptions (the sparsest ones, "a bouncing thing", sit lowest)."""
    sims = sorted(s for _, s in encoder.nearest(texts))
    return sims[int(quantile * len(sims))], sims


def calibrate(model_dir: Path, seed: int = 0) -> float:
    """Set a model folder's out-of-domain threshold again from 2000 held-out descriptions."""
    model = from_pretrained(model_dir)
    if model.text.kind != "pretrained":
        raise SystemExit(f"'{model_dir}' reads prompts with a word encoder; only a pretrained encoder has a threshold")
    threshold, _ = ood_threshold(model.text, describe_pool(2000, POOL_SEED + 10**6 + seed)[0])
    config = json.loads((Path(model_dir) / "config.json").read_text())
    config["text"]["ood_similarity"] = threshold
    write_atomic(Path(model_dir) / "config.json", lambda p: Path(p).write_text(json.dumps(config, indent=2) + "\n"))
    return threshold


def connect(model: torch.nn.Module, *, source: str, connector: dict, bank: list[str]) -> ConnectedTextEncoder:
    """A pretrained-encoder text module for `model`, with its word encoder as the teacher."""
    teacher: WordTextEncoder = model.text
    frozen = FrozenEncoder(source)
    config = PretrainedEncoderConfig(source=source, source_width=frozen.width, width=teacher.width, connector=connector,
                                     teacher=asdict(teacher.config), bank=bank)
    encoder = ConnectedTextEncoder(config)
    encoder._frozen = frozen
    encoder.teacher.load_state_dict(teacher.state_dict())
    return encoder


def weights_dtype(model_dir: Path) -> torch.dtype | None:
    """bfloat16 when the teacher's folder stores its weights so (the bundles do), else as trained."""
    with safe_open(Path(model_dir) / "model.safetensors", "pt") as f:
        return torch.bfloat16 if any(f.get_slice(k).get_dtype() == "BF16" for k in list(f.keys())[:8]) else None


def run(args) -> Path:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = from_pretrained(args.model).float()
    current = model.text.eval()
    if getattr(model.text, "teacher", None) is not None:  # distil again from the teacher a connected model keeps
        model.text = model.text.teacher
    if model.text.kind != "word":
        raise SystemExit(f"'{args.model}' does not read prompts with a word encoder; distillation needs one as the teacher")
    if args.target == "connector" and current.kind != "pretrained":
        raise SystemExit(f"'{args.model}' has no connector to distil from; use --target word")
    connector = {"slots": args.slots, "width": args.width, "depth": args.depth, "heads": args.heads}
    encoder = connect(model, source=args.source, connector=connector, bank=caption_bank())
    t0 = time.time()
    states, mask, _, captions = cached_pool(encoder.frozen, args.pool, POOL_SEED + args.seed, args.cache)
    pool = (states, mask, captions)
    held_states, held_mask, held_texts, held_captions = cached_pool(encoder.frozen, 2000, POOL_SEED + 10**6 + args.seed, args.cache,
                                                                    desc="encode held-out")
    held = (held_states, held_mask, held_captions)
    targets, log = Targets(current if args.target == "connector" else encoder.teacher, args.slots), []
    train_connector(encoder, pool, targets, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, log=log)
    with torch.no_grad():
        encoder.bank.copy_(encoder.frozen.encode(encoder.config.bank)[2])
    encoder.config.ood_similarity, sims = ood_threshold(encoder, held_texts)
    summary = {"held_out": held_out_error(encoder, held, targets), "ood_similarity": encoder.config.ood_similarity,
               "held_out_similarity_min": sims[0], "seconds": time.time() - t0, "pool": args.pool, "steps": args.steps,
               "target": args.target}
    model.text = encoder
    out = Path(args.output)
    save_pretrained(model, out, dtype=weights_dtype(Path(args.model_dir)), extra={k: v for k, v in json.loads((Path(args.model_dir) / "config.json").read_text()).items()
                                       if k in ("trained_steps", "recipe", "decode_with")})
    (out / "connector_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (out / "connector_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return out


def main(argv: list[str] | None = None) -> None:
    from framecast.pipeline import resolve_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a bundled model name or folder with a word encoder (the teacher)")
    p.add_argument("--output", help="the new model folder")
    p.add_argument("--source", default=DEFAULT_SOURCE, help="the pretrained encoder: package:NAME or a transformers folder")
    p.add_argument("--pool", type=int, default=40000, help="descriptions encoded once for training")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--slots", type=int, default=16, help="context states the connector writes")
    p.add_argument("--width", type=int, default=128, help="connector width")
    p.add_argument("--depth", type=int, default=2, help="connector layers")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--cache", type=Path, default=Path("runs/text-pool"), help="where encoded description pools are kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--target", choices=("word", "connector"), default="word",
                   help="what the connector learns to write for a description: the word encoder's context for its canonical "
                        "caption, or the folder's own connector's (a few-step student, whose steps learned that context)")
    p.add_argument("--calibrate", action="store_true", help="only set the out-of-domain threshold of the --model folder again")
    args = p.parse_args(argv)
    if args.calibrate:
        print(f"ood_similarity {calibrate(Path(args.model), args.seed):.3f}")
        return
    if args.output is None:
        p.error("--output is required")
    args.model_dir = resolve_model(args.model)
    args.model = args.model_dir
    run(args)


if __name__ == "__main__":
    main()
