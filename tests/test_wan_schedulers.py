"""A model folder's scheduler config as framecast sampling, against diffusers' schedulers' own loops."""

import json

import pytest
import torch

pytest.importorskip("diffusers")

from wan_tiny import tiny_scheduler  # noqa: E402

from framecast.sampling import sample_euler  # noqa: E402
from framecast.sampling.external import (  # noqa: E402
    diffusers_steps, flow_match_sigmas, read_scheduler_config, sample_diffusers, velocity_denoiser,
)


def toy_velocity(x, t):
    """A linear 'model' that reads the timestep, so a wrong t shows in the result."""
    return 0.1 * x + 0.5 * torch.as_tensor(t, dtype=x.dtype) / 1000 - 0.2


def diffusers_loop(scheduler, x, steps):
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        x = scheduler.step(toy_velocity(x, t), t, x, return_dict=False)[0]
    return x


def saved_spec(tmp_path, kind):
    tiny_scheduler(kind, shift=3.0).save_config(tmp_path)
    return read_scheduler_config(tmp_path)


@pytest.mark.parametrize("steps", [4, 10])
def test_flow_match_euler_is_framecast_euler(tmp_path, steps):
    spec = saved_spec(tmp_path, "flow-euler")
    assert spec.native and spec.shift == 3.0 and spec.num_train_timesteps == 1000
    reference = tiny_scheduler("flow-euler", shift=3.0)
    reference.set_timesteps(steps)
    assert torch.equal(spec.sigmas(steps), reference.sigmas)  # bit for bit, and so the timesteps sigma * 1000
    assert torch.equal(spec.sigmas(steps)[:-1] * 1000, reference.timesteps)
    x = torch.randn(2, 3, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    ours = sample_euler(velocity_denoiser(toy_velocity, spec.num_train_timesteps), x, spec.sigmas(steps))
    theirs = diffusers_loop(tiny_scheduler("flow-euler", shift=3.0), x, steps)
    assert (ours - theirs).abs().max() <= 1e-6


@pytest.mark.parametrize("steps", [4, 10])
def test_unipc_runs_as_diffusers_runs_it(tmp_path, steps):
    spec = saved_spec(tmp_path, "unipc")
    assert not spec.native and spec.shift == 3.0 and "UniPC" in spec.describe()
    x = torch.randn(2, 3, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    seen = []
    ours = sample_diffusers(spec, toy_velocity, x, steps, callback=lambda i, s, x, x0: seen.append(float(s)))
    theirs = diffusers_loop(tiny_scheduler("unipc", shift=3.0), x, steps)
    assert (ours - theirs).abs().max() <= 1e-6
    assert len(seen) == steps and seen[-1] == 0.0
    # a second run starts from a fresh scheduler: the same result
    assert torch.equal(sample_diffusers(spec, toy_velocity, x, steps), ours)


def test_steps_yield_every_step_and_callback_can_replace_x(tmp_path):
    spec = saved_spec(tmp_path, "unipc")
    x = torch.zeros(1, 2, 3)
    assert [i for i, _ in diffusers_steps(spec, toy_velocity, x, 3)] == [0, 1, 2]
    held = sample_diffusers(spec, toy_velocity, x, 3, callback=lambda i, s, x, x0: torch.full_like(x, 7.0))
    assert torch.equal(held, torch.full_like(x, 7.0))


def test_flow_match_sigmas_default_matches_diffusers():
    from diffusers import FlowMatchEulerDiscreteScheduler

    for shift, n in [(1.0, 1000), (5.0, 1000), (3.0, 100)]:
        ref = FlowMatchEulerDiscreteScheduler(shift=shift, num_train_timesteps=n)
        ref.set_timesteps(7)
        assert torch.equal(flow_match_sigmas(7, shift, n), ref.sigmas)


@pytest.mark.parametrize("config, match", [
    ({"shift": 3.0}, "names no scheduler class"),
    ({"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": True}, "dynamic shifting"),
    ("{oops", "is not valid JSON"),
])
def test_bad_scheduler_configs_are_refused(tmp_path, config, match):
    path = tmp_path / "scheduler_config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(ValueError, match=match):
        read_scheduler_config(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        read_scheduler_config(tmp_path / "nowhere")


def test_an_unknown_scheduler_class_is_one_sentence():
    spec = read_scheduler_config({"_class_name": "NoSuchScheduler"})
    with pytest.raises(ValueError, match="has no scheduler 'NoSuchScheduler'"):
        sample_diffusers(spec, toy_velocity, torch.zeros(1, 2), 2)
