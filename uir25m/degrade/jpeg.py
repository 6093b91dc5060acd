"""JPEG: `j`. The LQ holds the decoded pixels of the JPEG actually produced (OpenCV's libjpeg,
baseline, 4:2:0 chroma subsampling, all settings explicit)."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from uir25m import codec
from uir25m.degrade.params import sampler
from uir25m.degrade.pixels import pixel_io, to_uint8
from uir25m.degrade.registry import register

J_LEVELS: dict[str, dict[str, Any]] = {
    "heavy": {"quality": {"int": [10, 30]}},
    "medium": {"quality": {"int": [31, 60]}},
    "light": {"quality": {"int": [61, 95]}},
    "any": {"quality": {"int": [10, 95]}},
    "q50": {"quality": 50},  # MaskDCPT's JPEG test sets (CBSD68, Kodak, McMaster, Urban100)
}

ENCODER = "opencv-libjpeg baseline 4:2:0"


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a uint8 RGB image at `quality`."""
    params = [
        cv2.IMWRITE_JPEG_QUALITY, int(quality),
        cv2.IMWRITE_JPEG_OPTIMIZE, 0,
        cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    ]
    return codec.imencode(".jpg", rgb, params)


decode_jpeg = codec.imdecode  # OpenCV's libjpeg, the decoder of the encoder above


j_sample_params = sampler(J_LEVELS)


@pixel_io
def j_apply(image: np.ndarray, *, quality: int) -> np.ndarray:
    """Encode as JPEG at `quality` and decode again."""
    return decode_jpeg(encode_jpeg(to_uint8(image), quality)).astype(np.float32) / 255.0


register("j", levels=J_LEVELS, sample_params=j_sample_params, apply=j_apply, default_level="any")
