"""Flow matching: the straight training path, its loss, and the samplers that walk it back.

TIME CONVENTION (the one place it is written; every module in Vidora keeps it):

    t = 0 is pure noise, t = 1 is data.
    x_t = (1 - t) * noise + t * data          (a straight line: rectified flow)
    v   = dx_t/dt = data - noise              (the velocity the model learns)
    sampling integrates dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).

A timestep shift s > 1 warps time toward the noise end, t' = t / (t + s * (1 - t)), so more
training samples and more sampler steps land where the picture is still being decided; it is
the same warp SD3 and Wan apply to sigma = 1 - t.
"""

from __future__ import annotations

from vidora.flow.guidance import classifier_free_guidance
from vidora.flow.path import (
    flow_loss,
    interpolate,
    resolution_shift,
    sample_timesteps,
    shift_time,
    velocity_target,
)
from vidora.flow.samplers import SAMPLERS, EulerSampler, HeunSampler, RenoiseSampler, Sampler

__all__ = [
    "SAMPLERS",
    "EulerSampler",
    "HeunSampler",
    "RenoiseSampler",
    "Sampler",
    "classifier_free_guidance",
    "flow_loss",
    "interpolate",
    "resolution_shift",
    "sample_timesteps",
    "shift_time",
    "velocity_target",
]
