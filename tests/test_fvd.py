"""FVD: the Fréchet distance against closed forms, the I3D loaders on a random-weight I3D (its
safetensors and TorchScript forms), and the Shapes classifier's FVD ordering real < shuffled < untrained."""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from framecast.data.shapes import render_clip
from framecast.eval.classifier import (
    DEFAULT_PATH,
    ShapesFeatures,
    accuracy,
    caption_labels,
    classifier_tiny,
    load_classifier,
    save_classifier,
    train_classifier,
)
from framecast.eval.fvd import (
    I3D,
    I3DFeatures,
    feature_network,
    frechet_distance,
    frechet_distance_from_stats,
    fvd,
    load_i3d,
    shapes_fvd,
)

# recent torch deprecates TorchScript, which the tests use to build a stand-in for the reference export
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")


# --- the distance -----------------------------------------------------------------------------
def test_frechet_distance_matches_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # Diagonal covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2.
    mu_a, mu_b, va, vb = rng.normal(size=4), rng.normal(size=4), rng.uniform(0.2, 3, 4), rng.uniform(0.2, 3, 4)
    closed = ((mu_a - mu_b) ** 2).sum() + ((np.sqrt(va) - np.sqrt(vb)) ** 2).sum()
    assert frechet_distance_from_stats(mu_a, np.diag(va), mu_b, np.diag(vb)) == pytest.approx(closed, rel=1e-10)
    # Full, non-commuting covariances: Tr((S_a S_b)^1/2) = sum of sqrt of the (real, >= 0) eigenvalues of S_a S_b.
    m, n = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    sa, sb = m @ m.T + 0.1 * np.eye(5), n @ n.T
    reference = np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.linalg.eigvals(sa @ sb).real.clip(0)).sum()
    assert frechet_distance_from_stats(np.zeros(5), sa, np.zeros(5), sb) == pytest.approx(reference, rel=1e-8)
    # From samples, the estimate approaches the closed form.
    xa = mu_a + np.sqrt(va) * rng.normal(size=(20000, 4))
    xb = mu_b + np.sqrt(vb) * rng.normal(size=(20000, 4))
    assert frechet_distance(xa, xb) == pytest.approx(closed, rel=0.05)
    with pytest.raises(ValueError):
        frechet_distance(a, a[:, :3])
    with pytest.raises(ValueError):
        frechet_distance(a[:1], a)


# --- I3D --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_i3d():
    torch.manual_seed(0)
    net = I3D(num_classes=400).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a load that skipped them would show
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm3d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return net


def _clips(n=2, frames=18, side=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, frames, side, side, 3), dtype=np.uint8)


def test_i3d_from_safetensors(random_i3d, tmp_path):
    path = tmp_path / "i3d.safetensors"
    save_file({k: v.contiguous() for k, v in random_i3d.state_dict().items() if "num_batches_tracked" not in k}, str(path))
    # size=32 keeps the test fast; FVD proper is at 224 (the default).
    ext = load_i3d(path, size=32)
    clips = _clips()
    x = ext.preprocess(clips)
    assert x.shape == (2, 3, 16, 32, 32) and x.min() >= -1 and x.max() <= 1
    feats = ext(clips)
    with torch.no_grad():
        assert np.allclose(feats, random_i3d(x).numpy(), atol=1e-5)
    assert feats.shape == (2, 400) and load_i3d(path, size=32, layer="pool")(clips).shape == (2, 1024)
    assert load_i3d(path).preprocess(clips[:1]).shape == (1, 3, 16, 224, 224)  # the standard input
    with pytest.raises(ValueError, match="at least 16 frames"):
        ext(_clips(frames=8))


class _StyleGANVExport(nn.Module):
    """The calling convention of StyleGAN-V's i3d_torchscript.pt: forward(x, rescale, resize,
    return_features), features = the logits, else the softmax."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = False):
        assert not rescale and not resize, "framecast scales and resizes itself"
        logits = self.net(x)
        return logits if return_features else logits.softmax(-1)


def test_i3d_from_torchscript(random_i3d, tmp_path):
    clips = _clips(seed=1)
    with warnings.catch_warnings():  # tracing fixes the 'SAME' padding of this input size, and says so
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(random_i3d, torch.zeros(1, 3, 16, 32, 32), check_trace=False)
    torch.jit.save(torch.jit.script(_StyleGANVExport(traced)), str(tmp_path / "i3d_torchscript.pt"))
    torch.jit.save(traced, str(tmp_path / "bare.pt"))  # an export without the keyword arguments
    with torch.no_grad():
        expected = random_i3d(load_i3d(tmp_path / "bare.pt", size=32).preprocess(clips)).numpy()
    for name in ("i3d_torchscript.pt", "bare.pt"):
        ext = load_i3d(tmp_path / name, size=32)
        assert np.allclose(ext(clips), expected, atol=1e-5), name
    with pytest.raises(ValueError, match="safetensors"):
        load_i3d(tmp_path / "bare.pt", layer="pool")


def test_i3d_refuses_other_files_and_converts_pickles(random_i3d, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="neither a safetensors"):
        load_i3d(junk)
    with pytest.raises(ValueError, match="does not exist"):
        load_i3d(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not an I3D state dict"):
        load_i3d(other)
    pickled = tmp_path / "rgb_imagenet.pt"
    torch.save({f"module.{k}": v for k, v in random_i3d.state_dict().items()}, pickled)
    with pytest.raises(ValueError, match="convert_i3d.py"):
        load_i3d(pickled)
    spec = importlib.util.spec_from_file_location("convert_i3d", Path(__file__).parents[1] / "tools" / "convert_i3d.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tool.convert(pickled, tmp_path / "converted.safetensors")
    direct = I3DFeatures(random_i3d, name="in-memory", size=32)
    assert np.allclose(load_i3d(out, size=32)(_clips(n=1)), direct(_clips(n=1)), atol=1e-5)


def _ordering_sets(tiny_model_dir, n: int = 128):
    """Real clips, other real clips, those with shuffled frames, and an untrained model's clips of
    the other clips' prompts: the sets whose FVD to the real ones must rise in that order."""
    from framecast.pipeline import load

    real = [render_clip(i).video for i in range(n)]
    other = [render_clip(10_000 + i).video for i in range(n)]
    rng = np.random.default_rng(0)
    shuffled = [v[rng.permutation(len(v))] for v in other]
    untrained = load(tiny_model_dir)([render_clip(10_000 + i).caption for i in range(n)], num_frames=16, num_inference_steps=2,
                                     generator=[torch.Generator().manual_seed(i) for i in range(n)]).frames
    return real, other, shuffled, untrained


# --- the Shapes classifier ----------------------------------------------------------------------
def test_caption_labels():
    labels = caption_labels(["a big red circle moves right and a small blue square moves left",
                             "a small white triangle moves up"])
    # count-1, then (colour, shape, size, direction) per slot; -100 for the absent second object
    assert labels.tolist() == [[1, 0, 0, 1, 1, 2, 1, 0, 0], [0, 6, 2, 0, 2, -100, -100, -100, -100]]


def test_fvd_orders_real_shuffled_untrained(tiny_model_dir, tmp_path):
    """Acceptance: with a (tiny, seconds-trained) Shapes classifier, FVD(real, real') < FVD(real,
    real' with shuffled frames) < FVD(real, an untrained model's clips)."""
    model = train_classifier(120, 16, lr=3e-3, config=classifier_tiny(), progress=False)
    scores = accuracy(model, 64)
    assert set(scores) == {"count", "colour", "shape", "size", "direction", "caption"} and scores["count"] > 0.7

    folder = save_classifier(model, tmp_path / "shapes-classifier")
    ext = feature_network(f"shapes:{folder}")
    assert ext.name == "shapes-classifier:shapes-classifier"
    real, other, shuffled, untrained = _ordering_sets(tiny_model_dir)
    f_real = ext(real)
    d_real, d_shuffled, d_untrained = (frechet_distance(f_real, ext(s)) for s in (other, shuffled, untrained))
    assert d_real < d_shuffled < d_untrained, (d_real, d_shuffled, d_untrained)
    # against the real clips of their own prompts, real clips score 0, above a floor of real vs other real clips
    report = shapes_fvd(real, split="train", network=ext)
    assert report["fvd"] == pytest.approx(0, abs=1e-6) and report["fvd_real_vs_real"] == pytest.approx(d_real, rel=0.5)
    # float input (framecast's in-memory convention) and the save/load round trip give the same features
    as_float = torch.from_numpy(np.stack(real[:4])).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    assert np.allclose(ShapesFeatures(load_classifier(folder))(as_float), f_real[:4], atol=1e-5)
    with pytest.raises(ValueError, match="at least 16 frames"):
        ext([v[:8] for v in real])
    with pytest.raises(ValueError, match="unknown FVD feature network"):
        feature_network("inception")
    if not DEFAULT_PATH.is_dir():
        with pytest.raises(ValueError, match="ships no Shapes classifier yet"):
            feature_network("shapes")


@pytest.mark.skipif(not DEFAULT_PATH.is_dir(), reason="no shipped Shapes classifier yet")
def test_shipped_classifier_orders_real_shuffled_untrained(tiny_model_dir):
    ext = feature_network("shapes")
    real, other, shuffled, untrained = _ordering_sets(tiny_model_dir)
    assert fvd(real, other, ext) < fvd(real, shuffled, ext) < fvd(real, untrained, ext)
