"""Blur: `mb` (random-trajectory motion), `db` (defocus disk), `gb` (Gaussian family and sinc,
Real-ESRGAN kernels and ranges)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from uir25m.degrade import kernels
from uir25m.degrade.params import draw, round6, sampler
from uir25m.degrade.pixels import filter2d, pixel_io
from uir25m.degrade.registry import register

# --- motion blur -------------------------------------------------------------------------------

_SHAKE = {
    "exposure": {"uniform": [0.001, 0.01]},
    "centripetal": {"uniform": [0.0, 0.7]},
    "big_shake": {"uniform": [0.0, 0.2]},
    "gaussian_shake": {"uniform": [0.0, 10.0]},
}
MB_LEVELS: dict[str, dict[str, Any]] = {
    "light": {"length": {"uniform": [4.0, 12.0]}, **_SHAKE},
    "medium": {"length": {"uniform": [12.0, 24.0]}, **_SHAKE},
    "heavy": {"length": {"uniform": [24.0, 40.0]}, **_SHAKE},
    "any": {"length": {"uniform": [4.0, 40.0]}, **_SHAKE},
}


mb_sample_params = sampler(MB_LEVELS, "kernel_seed")


def motion_kernel(
    length: float, exposure: float, centripetal: float, big_shake: float, gaussian_shake: float,
    kernel_seed: int,
) -> np.ndarray:
    """The point-spread function of one random camera trajectory."""
    path = kernels.trajectory(
        length, exposure=exposure, centripetal=centripetal, big_shake=big_shake,
        gaussian_shake=gaussian_shake, seed=kernel_seed,
    )
    return kernels.rasterise(path)


@pixel_io
def mb_apply(
    image: np.ndarray, *, length: float, exposure: float, centripetal: float, big_shake: float,
    gaussian_shake: float, kernel_seed: int,
) -> np.ndarray:
    """Convolve with a random-trajectory kernel (Boracchi & Foi 2012)."""
    k = motion_kernel(length, exposure, centripetal, big_shake, gaussian_shake, kernel_seed)
    return filter2d(image, k)


# --- defocus -----------------------------------------------------------------------------------

DB_LEVELS: dict[str, dict[str, Any]] = {
    "light": {"radius": {"int": [2, 4]}, "alias_blur": {"uniform": [0.1, 0.5]}},
    "medium": {"radius": {"int": [5, 8]}, "alias_blur": {"uniform": [0.1, 0.5]}},
    "heavy": {"radius": {"int": [9, 14]}, "alias_blur": {"uniform": [0.1, 0.5]}},
    "any": {"radius": {"int": [2, 12]}, "alias_blur": {"uniform": [0.1, 0.5]}},
}


db_sample_params = sampler(DB_LEVELS)


@pixel_io
def db_apply(image: np.ndarray, *, radius: int, alias_blur: float) -> np.ndarray:
    """Convolve with an anti-aliased disk (the defocus PSF)."""
    return filter2d(image, kernels.disk(int(radius), float(alias_blur)))


# --- Gaussian & sinc ---------------------------------------------------------------------------

_REALESRGAN = {
    "kernel_size": {"odd": [7, 21]},
    "kind": {"choice": list(kernels.GAUSSIAN_FAMILY), "p": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]},
    "sigma_x": {"uniform": [0.2, 3.0]},
    "sigma_y": {"uniform": [0.2, 3.0]},
    "rotation": {"uniform": [-math.pi, math.pi]},
    "betag": {"uniform": [0.5, 4.0]},
    "betap": {"uniform": [1.0, 2.0]},
    "sinc_prob": 0.1,
}
GB_LEVELS: dict[str, dict[str, Any]] = {
    # MaskDCPT's GB test settings (Real-ESRGAN kernels, sigma 0.2-3, sinc with p = 0.1)
    "realesrgan": _REALESRGAN,
    "gaussian": {**_REALESRGAN, "kind": "iso", "sigma_x": {"uniform": [0.5, 3.0]}, "sinc_prob": 0.0},
    "sinc": {**_REALESRGAN, "sinc_prob": 1.0},
    # the second-order stage of Real-ESRGAN (milder)
    "realesrgan_second": {**_REALESRGAN, "sigma_x": {"uniform": [0.2, 1.5]}, "sigma_y": {"uniform": [0.2, 1.5]}},
}


def gb_sample_params(rng: np.random.Generator, level: str, spec: dict | None = None) -> dict[str, Any]:
    """Draw a kernel as Real-ESRGAN does: sinc with probability `sinc_prob`, else one of the six
    Gaussian-family shapes; only the parameters that shape uses are kept."""
    s = dict(spec if spec is not None else GB_LEVELS[level])
    size = int(draw(rng, s["kernel_size"]))
    if rng.random() < float(s.get("sinc_prob", 0.0)):
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return {"kernel_size": size, "kind": "sinc", "omega_c": round6(rng.uniform(lo, math.pi))}
    kind = str(draw(rng, s["kind"]))
    params: dict[str, Any] = {"kernel_size": size, "kind": kind, "sigma_x": draw(rng, s["sigma_x"])}
    if "aniso" in kind:
        params["sigma_y"] = draw(rng, s["sigma_y"])
        params["rotation"] = draw(rng, s["rotation"])
    if kind.startswith("generalized"):
        params["beta"] = draw(rng, s["betag"])
    elif kind.startswith("plateau"):
        params["beta"] = draw(rng, s["betap"])
    return params


def blur_kernel(
    kernel_size: int, kind: str, sigma_x: float = 1.0, sigma_y: float | None = None,
    rotation: float = 0.0, beta: float = 1.0, omega_c: float | None = None,
) -> np.ndarray:
    """The kernel described by gb params."""
    if kind == "sinc":
        if omega_c is None:
            raise ValueError("gb: a sinc kernel needs omega_c")
        return kernels.sinc(int(kernel_size), float(omega_c))
    return kernels.gaussian_family(
        int(kernel_size), kind, float(sigma_x), float(sigma_x if sigma_y is None else sigma_y),
        float(rotation), float(beta),
    )


@pixel_io
def gb_apply(image: np.ndarray, **params: Any) -> np.ndarray:
    """Convolve with a Gaussian-family or sinc kernel (see `blur_kernel` for the params)."""
    return filter2d(image, blur_kernel(**params))


register("mb", levels=MB_LEVELS, sample_params=mb_sample_params, apply=mb_apply, default_level="any")
register("db", levels=DB_LEVELS, sample_params=db_sample_params, apply=db_apply, default_level="any")
register("gb", levels=GB_LEVELS, sample_params=gb_sample_params, apply=gb_apply)
