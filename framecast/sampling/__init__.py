"""Layer 4: stateless samplers, noise schedules, guidance."""

from framecast.sampling.guidance import cfg_combine
from framecast.sampling.samplers import (
    ETA, SAMPLERS, ancestral_step, get_sampler, sample_dpmpp_2m, sample_euler, sample_euler_ancestral, sample_euler_stochastic,
    sample_heun,
)
from framecast.sampling.schedules import flow_sigmas, sample_training_sigmas, shift_sigmas

__all__ = [
    "ETA", "SAMPLERS", "ancestral_step", "cfg_combine", "flow_sigmas", "get_sampler", "sample_dpmpp_2m", "sample_euler",
    "sample_euler_ancestral", "sample_euler_stochastic", "sample_heun", "sample_training_sigmas", "shift_sigmas",
]
