"""Noise: `gn` (Gaussian, Poisson, salt-and-pepper) and `rn` (signal-dependent sensor noise).

`rn` in UIR-2.5M is real captured noise (SIDD); the synthetic model here (shot + read noise in
linear light, Brooks et al. 2019 "Unprocessing" ranges) is for demos and clean-only sources and
is labelled `real: false`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from uir25m.degrade.params import draw_all, new_seed, round6
from uir25m.degrade.pixels import linear_to_srgb, pixel_io, srgb_to_linear
from uir25m.degrade.registry import register

GN_LEVELS: dict[str, dict[str, Any]] = {
    "gaussian_15": {"noise": "gaussian", "sigma": 15.0},
    "gaussian_25": {"noise": "gaussian", "sigma": 25.0},
    "gaussian_50": {"noise": "gaussian", "sigma": 50.0},
    "gaussian_60": {"noise": "gaussian", "sigma": 60.0},  # the OOD denoising tests (test-dn)
    "gaussian_75": {"noise": "gaussian", "sigma": 75.0},
    "gaussian": {"noise": "gaussian", "sigma": {"uniform": [1.0, 50.0]}},
    "poisson": {"noise": "poisson", "scale": {"loguniform": [0.002, 0.05]}},
    "salt_pepper": {
        "noise": "salt_pepper",
        "amount": {"uniform": [0.01, 0.06]},
        "salt_vs_pepper": {"uniform": [0.4, 0.6]},
    },
    # shot + Gaussian read noise; the noise stage of the blur + low-light + noise mixed type
    "poisson_gaussian": {
        "noise": "poisson_gaussian",
        "scale": {"loguniform": [0.002, 0.02]},
        "sigma": {"uniform": [1.0, 8.0]},
    },
}


def gn_sample_params(rng: np.random.Generator, level: str, spec: dict | None = None) -> dict[str, Any]:
    params = draw_all(rng, spec if spec is not None else GN_LEVELS[level])
    params.setdefault("gray", False)
    params["noise_seed"] = new_seed(rng)
    return params


def _poisson(x: np.ndarray, scale: float, gen: np.random.Generator, gray: bool) -> np.ndarray:
    """Shot noise in linear light: `1/scale` photons at full white."""
    lin = srgb_to_linear(x)
    if gray:
        luma = lin @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
        noisy = gen.poisson(luma / scale).astype(np.float32) * scale
        lin = lin + (noisy - luma)[..., None]
    else:
        lin = gen.poisson(lin / scale).astype(np.float32) * scale
    return linear_to_srgb(lin)


@pixel_io
def gn_apply(
    image: np.ndarray,
    *,
    noise: str,
    noise_seed: int,
    sigma: float = 0.0,
    scale: float = 0.0,
    amount: float = 0.0,
    salt_vs_pepper: float = 0.5,
    gray: bool = False,
) -> np.ndarray:
    """Add one kind of noise. `sigma` is on the 0-255 scale; `scale` is the Poisson photon scale."""
    gen = np.random.default_rng(noise_seed)
    h, w, _ = image.shape
    if noise == "gaussian":
        n = gen.standard_normal((h, w, 1 if gray else 3), dtype=np.float32)
        return image + n * np.float32(sigma / 255.0)
    if noise == "poisson":
        return _poisson(image, scale, gen, gray)
    if noise == "poisson_gaussian":
        x = _poisson(image, scale, gen, gray)
        return x + gen.standard_normal((h, w, 1 if gray else 3), dtype=np.float32) * np.float32(sigma / 255.0)
    if noise == "salt_pepper":
        r = gen.random((h, w))
        salt = r < amount * salt_vs_pepper
        pepper = (r >= amount * salt_vs_pepper) & (r < amount)
        out = image.copy()
        out[salt] = 1.0
        out[pepper] = 0.0
        return out
    raise ValueError(f"gn: unknown noise {noise!r}; one of gaussian, poisson, poisson_gaussian, salt_pepper")


RN_LEVELS: dict[str, dict[str, Any]] = {
    "sensor": {"shot": {"loguniform": [0.0001, 0.012]}},
    "low_iso": {"shot": {"loguniform": [0.0001, 0.001]}},
    "high_iso": {"shot": {"loguniform": [0.003, 0.02]}},
}


def rn_sample_params(rng: np.random.Generator, level: str, spec: dict | None = None) -> dict[str, Any]:
    params = draw_all(rng, spec if spec is not None else RN_LEVELS[level])
    # Unprocessing: log(read) = 2.18 log(shot) + 1.2 + N(0, 0.26); both are variances in linear light
    log_read = 2.18 * math.log(params["shot"]) + 1.2 + rng.normal(0.0, 0.26)
    params["read"] = round6(math.exp(log_read))
    params["noise_seed"] = new_seed(rng)
    return params


@pixel_io
def rn_apply(image: np.ndarray, *, shot: float, read: float, noise_seed: int) -> np.ndarray:
    """Heteroscedastic sensor noise: variance = shot * signal + read, in linear light."""
    gen = np.random.default_rng(noise_seed)
    lin = srgb_to_linear(image)
    std = np.sqrt(np.maximum(shot * lin + read, 0.0))
    noisy = lin + std * gen.standard_normal(lin.shape, dtype=np.float32)
    return linear_to_srgb(noisy)


register("gn", levels=GN_LEVELS, sample_params=gn_sample_params, apply=gn_apply, default_level="gaussian")
register("rn", levels=RN_LEVELS, sample_params=rn_sample_params, apply=rn_apply)
