"""Schedules against diffusers, samplers against closed-form answers."""

import math

import pytest
import torch

from framecast.sampling import ancestral_step, flow_sigmas, get_sampler, sample_euler, sample_euler_ancestral, sample_heun, shift_sigmas


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("steps", [4, 25])
def test_schedule_matches_diffusers(shift, steps):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    sched.set_timesteps(steps)
    ours = flow_sigmas(steps, shift=shift, sigma_min=float(shift_sigmas(torch.tensor(1 / 1000), shift)))
    assert torch.allclose(ours, sched.sigmas.float(), atol=1e-6)


def test_schedule_shape_and_shift():
    s = flow_sigmas(10, shift=3.0)
    assert s.shape == (11,) and s[0] == 1 and s[-1] == 0 and (s[1:] < s[:-1]).all()
    assert (s[1:-1] > flow_sigmas(10)[1:-1]).all()  # shift > 1 spends more steps at high noise
    assert torch.allclose(shift_sigmas(torch.tensor([0.0, 0.5, 1.0]), 1.0), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=">= 1"):
        flow_sigmas(0)


def _gaussian_denoiser(c: float):
    """Exact E[x0 | x_s] when x0 ~ N(0, c^2): x_s = (1-s) x0 + s eps."""

    def denoise(x, s):
        a = 1 - s
        return a * c**2 / (a**2 * c**2 + s**2) * x

    return denoise


@pytest.mark.parametrize("name", ["euler", "euler-ancestral", "heun", "dpmpp-2m"])
def test_samplers_transport_noise_to_the_data_distribution(name):
    c = 0.5
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(0)).double()
    steps = 200 if name == "euler-ancestral" else 40  # stochastic steps converge more slowly (0.46 at 40)
    out = get_sampler(name)(_gaussian_denoiser(c), x, flow_sigmas(steps).double())
    assert abs(out.std().item() - c) < 0.02


def test_heun_is_more_accurate_than_euler_per_step():
    c = 0.5
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(1)).double()
    den = _gaussian_denoiser(c)
    exact = sample_heun(den, x, flow_sigmas(400).double())
    err_euler = (sample_euler(den, x, flow_sigmas(10).double()) - exact).abs().mean()
    err_heun = (sample_heun(den, x, flow_sigmas(10).double()) - exact).abs().mean()
    assert err_heun < err_euler / 3


def test_callback_sees_every_step_and_can_replace_x():
    seen = []

    def cb(i, sigma, x, x0):
        seen.append(i)
        return torch.zeros_like(x) if i == 2 else None

    out = sample_euler(lambda x, s: x * 0 + 1.0, torch.randn(3), flow_sigmas(5), callback=cb)
    assert seen == [0, 1, 2, 3, 4] and torch.allclose(out, torch.ones(3))
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("ddpm-magic")


def test_stochastic_step_matches_diffusers():
    """eta = inf is FlowMatchEulerDiscreteScheduler(stochastic_sampling=True): the same step from
    the same noise."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, stochastic_sampling=True)
    sched.set_timesteps(5)
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    v = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))  # a velocity prediction
    s, s_next = sched.sigmas[1], sched.sigmas[2]
    sched._step_index = 1
    theirs = sched.step(v, sched.timesteps[1], x, generator=torch.Generator().manual_seed(2)).prev_sample
    ours = ancestral_step(x, x - s * v, s, s_next, torch.randn(x.shape, generator=torch.Generator().manual_seed(2)), math.inf)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_ancestral_family():
    den = _gaussian_denoiser(0.5)
    x = torch.randn(2, 1000, generator=torch.Generator().manual_seed(3)).double()
    sig = flow_sigmas(8).double()
    assert torch.allclose(sample_euler_ancestral(den, x, sig, eta=0.0), sample_euler(den, x, sig))  # eta = 0 is Euler
    gens = lambda: [torch.Generator().manual_seed(k) for k in (4, 5)]  # noqa: E731
    both = sample_euler_ancestral(den, x, sig, generator=gens())
    alone = sample_euler_ancestral(den, x[1:], sig, generator=[torch.Generator().manual_seed(5)])
    assert torch.allclose(both[1:], alone)  # each clip's noise is its own
    # renewing all the noise with the exact posterior mean shrinks the spread: it is not a sampler of
    # the data distribution, only of what a model's mean predictions make sharp
    wide = torch.randn(200_000, generator=torch.Generator().manual_seed(0)).double()
    assert get_sampler("euler-stochastic")(den, wide, flow_sigmas(40).double()).std() < 0.45
    with pytest.raises(ValueError, match="eta"):
        sample_euler_ancestral(den, x, sig, eta=-1.0)
