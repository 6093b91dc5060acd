"""Mosaic: `ms`. Sample an RGB image on an RGGB Bayer colour-filter array, then demosaic it.

OpenCV names Bayer patterns by the 2x2 block starting at pixel (1, 1), so an RGGB sensor (R at
(0, 0), B at (1, 1)) read into an RGB array is `COLOR_BayerBG2RGB*` (the MaskDCPT code's
`BayerBG2BGR_EA` on an RGB array swaps red and blue).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from uir25m.degrade.params import sampler
from uir25m.degrade.pixels import pixel_io, to_uint8
from uir25m.degrade.registry import register

DEMOSAIC = {
    "bilinear": cv2.COLOR_BayerBG2RGB,
    "edge_aware": cv2.COLOR_BayerBG2RGB_EA,
    "vng": cv2.COLOR_BayerBG2RGB_VNG,
}

MS_LEVELS: dict[str, dict[str, Any]] = {
    "any": {"demosaic": {"choice": list(DEMOSAIC)}},
    "bilinear": {"demosaic": "bilinear"},
    "edge_aware": {"demosaic": "edge_aware"},
    "vng": {"demosaic": "vng"},
}


def mosaic_rggb(rgb: np.ndarray) -> np.ndarray:
    """Single-plane RGGB colour-filter-array image of an H x W x 3 RGB image."""
    cfa = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    cfa[0::2, 0::2] = rgb[0::2, 0::2, 0]
    cfa[0::2, 1::2] = rgb[0::2, 1::2, 1]
    cfa[1::2, 0::2] = rgb[1::2, 0::2, 1]
    cfa[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return cfa


def demosaic_rggb(cfa: np.ndarray, method: str) -> np.ndarray:
    """RGB image from a uint8 RGGB CFA image with one of OpenCV's demosaicers."""
    try:
        code = DEMOSAIC[method]
    except KeyError:
        raise ValueError(f"ms: unknown demosaic {method!r}; one of {', '.join(DEMOSAIC)}") from None
    return cv2.cvtColor(np.ascontiguousarray(cfa), code)


ms_sample_params = sampler(MS_LEVELS)


@pixel_io
def ms_apply(image: np.ndarray, *, demosaic: str, pattern: str = "RGGB") -> np.ndarray:
    """RGGB mosaic, then demosaic (8-bit, as a camera pipeline would store it)."""
    if pattern != "RGGB":
        raise ValueError(f"ms: only the RGGB pattern is supported, got {pattern!r}")
    return demosaic_rggb(mosaic_rggb(to_uint8(image)), demosaic).astype(np.float32) / 255.0


register("ms", levels=MS_LEVELS, sample_params=ms_sample_params, apply=ms_apply)
