"""A small video classifier of the Shapes world, whose penultimate layer is framecast's
out-of-the-box FVD feature network (as MNIST studies compute FID with a small MNIST classifier).

It reads a clip (B, T, C, H, W) in [-1, 1] (S = 32, T = 16) and predicts its caption: the number
of objects and, for each of two object slots in caption order (top or left lane first), colour (7),
shape (3), size (2) and direction (4). Direction is only visible across frames, so the features
must encode motion: clips with shuffled frames land far from real ones.

Train and ship it (a few CPU minutes):

    python -m framecast.eval.classifier --steps 3000 --out framecast/assets/shapes-classifier
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from framecast.data.shapes import COLOURS, DIRECTIONS, SHAPES, SIZES, parse_caption, render_clip, shapes_batches
from framecast.eval.features import as_video_batch, chunks, first_frames, resize_frames
from framecast.generators.io import WEIGHTS_NAME, read_config, save_pretrained
from framecast.precision import autocast, resolve_precision
from framecast.train.loop import TrainLoop, progress_bar

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "assets" / "shapes-classifier"
SLOT_HEADS = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES), "direction": list(DIRECTIONS)}
SLOTS = 2
IGNORE = -100  # label of the second slot in a one-object clip


@dataclass(kw_only=True)
class ClassifierConfig:
    size: int = 32  # S the network reads; other sizes are resized to it
    frames: int = 16  # T it reads; longer clips are cut to the first T frames
    widths: tuple[int, ...] = (32, 64, 128, 128)
    strides: tuple[tuple[int, int, int], ...] = ((1, 2, 2), (1, 2, 2), (2, 2, 2), (1, 1, 1))  # (t, h, w) per block
    features: int = 128  # the FVD feature width

    def __post_init__(self):
        self.widths = tuple(self.widths)
        self.strides = tuple(tuple(s) for s in self.strides)
        if len(self.widths) != len(self.strides):
            raise ValueError(f"one stride per block: {len(self.widths)} widths, {len(self.strides)} strides")


def classifier_tiny() -> ClassifierConfig:
    """For tests: seconds to train."""
    return ClassifierConfig(widths=(16, 32, 48, 64), features=64)


def caption_labels(captions: list[str]) -> torch.Tensor:
    """(B, 1 + 4 * SLOTS) long: object count - 1, then colour, shape, size, direction per slot."""
    rows = []
    for caption in captions:
        objects = parse_caption(caption)
        row = [len(objects) - 1]
        for slot in range(SLOTS):
            obj = objects[slot] if slot < len(objects) else None
            row += [names.index(obj[head]) if obj else IGNORE for head, names in SLOT_HEADS.items()]
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long)


class ShapesClassifier(nn.Module):
    """RGB and frame difference -> 3-D conv blocks (conv 3x3x3, GroupNorm, SiLU) -> mean over time
    with a 4 x 4 spatial grid kept (slot order is a matter of where: top/left lane first) -> linear
    -> SiLU = features -> heads."""

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or ClassifierConfig()
        blocks, c = [], 6  # RGB + frame difference
        for w, s in zip(config.widths, config.strides):
            blocks += [nn.Conv3d(c, w, 3, stride=s, padding=1), nn.GroupNorm(min(8, w), w), nn.SiLU()]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Linear(c * 16, config.features)
        self.head = nn.Linear(config.features, 2 + SLOTS * sum(len(v) for v in SLOT_HEADS.values()))

    def spec(self) -> dict:
        """What config.json holds besides the format version: the family and this config."""
        return {"family": "classifier", "classifier": asdict(self.config)}

    def features(self, video_BTCHW: torch.Tensor) -> torch.Tensor:
        x = video_BTCHW.transpose(1, 2)  # (B, C, T, H, W)
        # The frame difference as a second input (as TSN's RGB-diff stream): motion is then
        # visible from the first layer, where a conv would otherwise have to learn to subtract.
        diff = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
        x = self.blocks(torch.cat([x, diff], dim=1))  # (B, C', T', h, w)
        x = F.adaptive_avg_pool3d(x, (1, 4, 4)).flatten(1)  # (B, C * 16)
        return F.silu(self.proj(x))  # (B, features)

    def forward(self, video_BTCHW: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per head: 'count' (B, 2) and per slot head (B, SLOTS, classes)."""
        logits = self.head(self.features(video_BTCHW))
        out = {"count": logits[:, :2]}
        rest = logits[:, 2:].reshape(len(logits), SLOTS, -1)
        start = 0
        for head, names in SLOT_HEADS.items():
            out[head] = rest[:, :, start : start + len(names)]
            start += len(names)
        return out

    def loss(self, video_BTCHW: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sum of the heads' cross-entropies (the absent second slot ignored)."""
        out = self(video_BTCHW)
        total = F.cross_entropy(out["count"].float(), labels[:, 0])
        for i, head in enumerate(SLOT_HEADS):
            target = labels[:, 1 + i :: len(SLOT_HEADS)]  # (B, SLOTS)
            total = total + F.cross_entropy(out[head].float().flatten(0, 1), target.flatten(), ignore_index=IGNORE)
        return total


@torch.no_grad()
def caption_log_likelihood(model: ShapesClassifier, video_BTCHW: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """(B,) log p(caption | clip) under the classifier: the sum over heads of the log-probability
    of the caption's label (the absent second slot left out). A verifier for best-of-N."""
    labels = caption_labels(captions)
    out = model(video_BTCHW)
    total = torch.log_softmax(out["count"].float(), -1).gather(1, labels[:, :1]).squeeze(1)
    for i, head in enumerate(SLOT_HEADS):
        target = labels[:, 1 + i :: len(SLOT_HEADS)]  # (B, SLOTS)
        logp = torch.log_softmax(out[head].float(), -1).gather(2, target.clamp(min=0)[..., None]).squeeze(2)
        total = total + (logp * (target != IGNORE)).sum(1)
    return total


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))  # cosine to 0.1x


class ClassifierTrainer(TrainLoop):
    """AdamW on endless rendered clips, in the training loop every framecast model shares. Every
    `compositional_every`-th batch comes from the compositional split, so the held-out (colour,
    shape) pairs get features too: the classifier is a judge, not a generator, and judges every
    caption of the world."""

    def __init__(self, steps: int = 3000, batch_size: int = 32, *, lr: float = 2e-3, config: ClassifierConfig | None = None,
                 seed: int = 0, compositional_every: int = 4, precision: str = "auto", progress: bool = True):
        self.steps, self.batch_size, self.lr, self.config, self.seed = steps, batch_size, lr, config, seed
        self.compositional_every, self.precision, self.progress = compositional_every, precision, progress

    def build(self) -> None:
        torch.manual_seed(self.seed)
        self.model = ShapesClassifier(self.config)
        cfg, steps = self.model.config, self.steps
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=0.01)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: _lr_factor(s, steps, warmup=min(100, steps // 10 + 1)))
        self.data = shapes_batches(batch_size=self.batch_size, split="train", size=cfg.size, frames=cfg.frames, seed=self.seed)
        self.comp = shapes_batches(batch_size=self.batch_size, split="compositional", size=cfg.size, frames=cfg.frames, seed=self.seed)
        self.model.train()
        self.precision = resolve_precision(self.precision, "cpu")
        self.bar = progress_bar(steps, desc=f"shapes classifier ({self.precision})", enabled=self.progress)
        self.running = None

    def step(self, step: int) -> float:
        every = self.compositional_every
        batch = next(self.comp if every and step % every == every - 1 else self.data)
        labels = caption_labels(batch["caption"])
        with autocast(self.precision, "cpu"):
            loss = self.model.loss(batch["video"], labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return loss.item()

    def log(self, done: int, loss: float) -> None:
        """A running mean of the loss on the bar, every 10 steps."""
        self.running = loss if self.running is None else 0.98 * self.running + 0.02 * loss
        if (done - 1) % 10 == 0:
            self.bar.set_postfix(loss=f"{self.running:.3f}")

    def finish(self) -> ShapesClassifier:
        return self.model.eval()


def train_classifier(steps: int = 3000, batch_size: int = 32, **kwargs) -> ShapesClassifier:
    """Train a Shapes classifier (`ClassifierTrainer`'s options); returns it in eval mode."""
    return ClassifierTrainer(steps, batch_size, **kwargs).train()


@torch.no_grad()
def accuracy(model: ShapesClassifier, n_clips: int = 512, *, split: str = "train", seed: int = 10**9,
             batch_size: int = 64) -> dict[str, float]:
    """Share right per head (slot heads over present objects) and 'caption': every head right, on
    clips of seeds seed, seed + 1, ... (far from the seeds training draws)."""
    cfg = model.config
    right = {k: 0 for k in ("count", *SLOT_HEADS, "caption")}
    objects = 0
    for start in range(0, n_clips, batch_size):
        seeds = range(seed + start, seed + min(n_clips, start + batch_size))
        clips = [render_clip(s, split=split, size=cfg.size, frames=cfg.frames) for s in seeds]
        labels = caption_labels([c.caption for c in clips])
        out = model(as_video_batch([c.video for c in clips]))
        all_right = out["count"].argmax(-1) == labels[:, 0]
        right["count"] += int(all_right.sum())
        present = labels[:, 1::len(SLOT_HEADS)] != IGNORE  # (B, SLOTS)
        objects += int(present.sum())
        for i, head in enumerate(SLOT_HEADS):
            ok = (out[head].argmax(-1) == labels[:, 1 + i :: len(SLOT_HEADS)]) | ~present
            right[head] += int((ok & present).sum())
            all_right &= ok.all(-1)
        right["caption"] += int(all_right.sum())
    return {k: v / (objects if k in SLOT_HEADS else n_clips) for k, v in right.items()}


# --- files: config.json + model.safetensors, as every framecast model folder -------------------
def save_classifier(model: ShapesClassifier, directory: str | Path, *, extra: dict | None = None) -> Path:
    """A model folder (atomic writes), as `save_pretrained` writes every framecast model."""
    return save_pretrained(model, directory, extra=extra)


def load_classifier(directory: str | Path | None = None) -> ShapesClassifier:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory) if directory is not None else DEFAULT_PATH
    if directory == DEFAULT_PATH and not directory.is_dir():
        raise ValueError("this framecast ships no Shapes classifier yet; train one: python -m framecast.eval.classifier --out "
                         f"{DEFAULT_PATH}")
    config = read_config(directory)
    if config.get("family") != "classifier" or not isinstance(config.get("classifier"), dict):
        raise ValueError(f"'{directory}' holds a {config.get('family', 'different')} model, not a Shapes classifier")
    try:
        model = ShapesClassifier(ClassifierConfig(**config["classifier"]))
        state = load_file(str(directory / WEIGHTS_NAME))
        model.load_state_dict(state)
    except (TypeError, RuntimeError, SafetensorError, OSError) as e:
        raise ValueError(f"the Shapes classifier in '{directory}' does not load ({str(e).splitlines()[0]})") from None
    return model.eval()


def classifier_input(model: ShapesClassifier, clips, who: str) -> torch.Tensor:
    """What the classifier reads: the first `frames` frames (`who` names the reader in the error
    for shorter clips), resized to S x S (area averaging down, bilinear up), in [-1, 1]."""
    cfg = model.config
    x = first_frames(as_video_batch(clips), cfg.frames, who)
    return resize_frames(x, cfg.size, "area" if x.shape[-1] > cfg.size else "bilinear")


class ShapesFeatures:
    """FVD features from the Shapes classifier. Preprocessing: the first `frames` (16) frames
    (shorter clips are rejected), frames resized to S x S (32) by area averaging when they are
    larger (bilinear when smaller), values in [-1, 1] (x / 127.5 - 1 from uint8). Features: the
    128-d layer before the heads, float32."""

    def __init__(self, model: ShapesClassifier, *, name: str = "shapes-classifier", batch_size: int = 64):
        self.model, self.name, self.batch_size = model.eval(), name, batch_size

    @classmethod
    def load(cls, directory: str | Path | None = None) -> ShapesFeatures:
        name = "shapes-classifier" if directory is None else f"shapes-classifier:{Path(directory).name}"
        return cls(load_classifier(directory), name=name)

    @torch.no_grad()
    def __call__(self, videos) -> np.ndarray:
        out = []
        for clips in chunks(videos, self.batch_size):
            out.append(self.model.features(classifier_input(self.model, clips, "Shapes-classifier")))
        return torch.cat(out).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the Shapes classifier that FVD uses as its feature network.")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = train_classifier(args.steps, args.batch_size, lr=args.lr, seed=args.seed)
    seconds = time.perf_counter() - start
    scores = {split: accuracy(model, 1024, split=split) for split in ("train", "compositional")}
    extra = {"training": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                          "seconds": round(seconds, 1), "threads": torch.get_num_threads()}, "accuracy": scores}
    save_classifier(model, args.out, extra=extra)
    print(json.dumps(extra, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
