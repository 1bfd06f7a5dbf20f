import os
from dataclasses import asdict

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(int(os.environ.get("FRAMECAST_TEST_THREADS", "2")))  # 1 while a training run shares the CPU
# The CLI and the server choose their threads (framecast.threads); in tests, the same count as here.
os.environ.setdefault("FRAMECAST_THREADS", os.environ.get("FRAMECAST_TEST_THREADS", "2"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """An untrained tiny diffusion model folder (random weights), as save_pretrained writes it."""
    from framecast.generators import ModelSpec, build_generator, save_pretrained
    from framecast.train.recipes import shapes_diffusion_tiny

    torch.manual_seed(0)
    model = build_generator(ModelSpec(**asdict(shapes_diffusion_tiny().model)))
    # Give the zero-initialised output layers some weight so outputs depend on inputs.
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0 and p.dim() >= 1:
                p.normal_(0, 0.02)
    return save_pretrained(model, tmp_path_factory.mktemp("models") / "tiny-diffusion")


def _perturbed(cfg, folder, noise: float):
    """A tiny model of a recipe with random weights moved by `noise`, saved as a model folder."""
    from framecast.generators import save_pretrained
    from tests.tiny_models import perturbed_generator

    return save_pretrained(perturbed_generator(asdict(cfg.model), noise), folder)


@pytest.fixture(scope="session")
def tiny_hybrid_dir(tmp_path_factory):
    from framecast.train.recipes import shapes_hybrid_tiny

    return _perturbed(shapes_hybrid_tiny(), tmp_path_factory.mktemp("models") / "tiny-hybrid", 0.05)


@pytest.fixture(scope="session")
def tiny_ar_dir(tmp_path_factory):
    from framecast.train.recipes import shapes_ar_tiny

    return _perturbed(shapes_ar_tiny("raster"), tmp_path_factory.mktemp("models") / "tiny-ar", 0.1)


# Pipelines over the tiny folders, one per test module (a module may replace their methods).
@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    import framecast

    return framecast.load(str(tiny_model_dir), precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def hybrid(tiny_hybrid_dir):
    import framecast

    return framecast.load(str(tiny_hybrid_dir), precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def ar(tiny_ar_dir):
    import framecast

    return framecast.load(str(tiny_ar_dir), precision="fp32", device="cpu")
