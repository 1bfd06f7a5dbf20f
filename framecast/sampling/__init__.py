"""Layer 4: stateless samplers, noise schedules, guidance."""

from framecast.sampling.guidance import cfg_combine
from framecast.sampling.samplers import SAMPLERS, get_sampler, sample_dpmpp_2m, sample_euler, sample_heun
from framecast.sampling.schedules import flow_sigmas, sample_training_sigmas, shift_sigmas

__all__ = [
    "SAMPLERS", "cfg_combine", "flow_sigmas", "get_sampler", "sample_dpmpp_2m", "sample_euler",
    "sample_heun", "sample_training_sigmas", "shift_sigmas",
]
