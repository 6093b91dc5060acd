"""Pixel conventions of the engine: float32 RGB in [0, 1] inside, uint8 RGB at the edges."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; float input is returned as float32."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.asarray(image, dtype=np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8, clipped and rounded to nearest (not truncated)."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def pixel_io(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Let an `apply` written for float32 [0, 1] take and return uint8 too (same dtype out as in).

    Mixed types call the float path, so pixels are quantised once, at the end.
    """

    @functools.wraps(fn)
    def wrapper(image: np.ndarray, **params: Any) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
        if image.dtype == np.uint8:
            return to_uint8(fn(to_float(image), **params))
        return np.clip(fn(to_float(image), **params), 0.0, 1.0).astype(np.float32)

    return wrapper


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """The sRGB transfer function, inverted (IEC 61966-2-1)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """The sRGB transfer function."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def filter2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True convolution (not OpenCV's correlation) with reflected borders, float32."""
    import cv2

    k = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    return cv2.filter2D(image, -1, k, borderType=cv2.BORDER_REFLECT_101)
