"""The degradation engine: per taxonomy code, named levels of parameter distributions, a
`sample_params(rng, level, spec=None)` and a pure `apply(image, **params)`.

Modules, in the order they register: params (the distribution language), pixels (float/uint8
conventions), kernels (blur kernels), noise (gn, rn), blur (mb, db, gb), jpeg (j), weather
(h, rs, rd, rsd, s), mosaic (ms), lowlight (ll), moire (mr), mixed (the five mixed types).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from uir25m.degrade.registry import Degradation, codes, get, register

# explicit imports register every type (no folder scanning)
from uir25m.degrade import noise, blur, jpeg, weather, mosaic, lowlight, moire, mixed  # noqa: E402,F401

__all__ = ["ENGINE_VERSION", "Degradation", "apply", "codes", "engine_versions", "get", "register", "sample"]

# bumped whenever a type's sampling or pixels change for the same seed and level (online datasets
# record it: the loader's pixels equal the offline build's only with the same engine and codecs)
ENGINE_VERSION = 1


def engine_versions() -> dict[str, str]:
    """What the degradation engine's output depends on: its own version, numpy's generator,
    SciPy's filters and OpenCV with its libjpeg (the JPEG type's codec)."""
    import cv2
    import scipy

    libjpeg = next((line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
                 if line.strip().startswith("JPEG:")), "unknown")
    return {"engine": str(ENGINE_VERSION), "numpy": np.__version__, "scipy": scipy.__version__,
            "opencv": cv2.__version__, "libjpeg": libjpeg}


def sample(
    code: str, rng: np.random.Generator, level: str, override: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Draw params of `code` at `level`, with a recipe's distribution overrides."""
    entry = get(code)
    return entry.sample_params(rng, level, entry.spec(level, override))


def apply(code: str, image: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Apply `code` with `params` to a uint8 RGB image; returns uint8 RGB of the same size."""
    if image.dtype != np.uint8:
        raise TypeError(f"apply expects a uint8 image, got {image.dtype}")
    out = get(code).apply(image, **params)
    if out.shape != image.shape:
        raise ValueError(f"{code}: output shape {out.shape} differs from input {image.shape}")
    return out
