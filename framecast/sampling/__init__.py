"""Layer 4: stateless samplers that step any noise-level matrix, noise schedules, guidance,
token drawing."""

from framecast.sampling.guidance import cfg_combine, guided
from framecast.sampling.samplers import (
    SAMPLERS, ancestral_step, get_sampler, get_steps, sample_dpmpp_2m, sample_euler, sample_euler_ancestral, sample_euler_stochastic,
    sample_heun,
)
from framecast.sampling.schedules import flow_sigmas, sample_training_sigmas, shift_sigmas

__all__ = [
    "SAMPLERS", "ancestral_step", "cfg_combine", "flow_sigmas", "get_sampler", "get_steps", "guided", "sample_dpmpp_2m",
    "sample_euler", "sample_euler_ancestral", "sample_euler_stochastic", "sample_heun", "sample_training_sigmas", "shift_sigmas",
]
