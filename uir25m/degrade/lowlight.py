"""Low light: `ll`. y = beta * (alpha * x) ** gamma (Lv et al., IJCV 2021 ranges), then
shot + read noise in linear light, as a dark exposure brightened by the camera would show."""
from __future__ import annotations

from typing import Any

import numpy as np

from uir25m.degrade.params import sampler
from uir25m.degrade.pixels import linear_to_srgb, pixel_io, srgb_to_linear
from uir25m.degrade.registry import register

_NOISE = {"shot": {"loguniform": [0.0002, 0.004]}, "read": {"loguniform": [0.000001, 0.0001]}}
LL_LEVELS: dict[str, dict[str, Any]] = {
    "dark": {"alpha": {"uniform": [0.9, 1.0]}, "beta": {"uniform": [0.5, 1.0]}, "gamma": {"uniform": [2.0, 3.5]}, **_NOISE},
    "very_dark": {"alpha": {"uniform": [0.9, 1.0]}, "beta": {"uniform": [0.5, 1.0]}, "gamma": {"uniform": [3.5, 5.0]}, **_NOISE},
    "any": {"alpha": {"uniform": [0.9, 1.0]}, "beta": {"uniform": [0.5, 1.0]}, "gamma": {"uniform": [1.5, 5.0]}, **_NOISE},
    # darkening only: the low-light stage of mixed types that add their own noise
    "clean": {"alpha": {"uniform": [0.9, 1.0]}, "beta": {"uniform": [0.5, 1.0]}, "gamma": {"uniform": [2.0, 3.5]}, "shot": 0.0, "read": 0.0},
}


ll_sample_params = sampler(LL_LEVELS, "noise_seed")


@pixel_io
def ll_apply(
    image: np.ndarray, *, alpha: float, beta: float, gamma: float, shot: float, read: float, noise_seed: int
) -> np.ndarray:
    """Darken with the gamma/scale curve, then add sensor noise (none when shot = read = 0)."""
    dark = np.float32(beta) * np.power(np.float32(alpha) * image, np.float32(gamma))
    if shot <= 0 and read <= 0:
        return dark
    lin = srgb_to_linear(dark)
    std = np.sqrt(shot * lin + read)
    gen = np.random.default_rng(noise_seed)
    return linear_to_srgb(lin + std * gen.standard_normal(lin.shape, dtype=np.float32))


register("ll", levels=LL_LEVELS, sample_params=ll_sample_params, apply=ll_apply, default_level="dark")
