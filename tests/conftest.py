import os
from dataclasses import asdict

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(int(os.environ.get("FRAMECAST_TEST_THREADS", "2")))  # 1 while a training run shares the CPU


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
