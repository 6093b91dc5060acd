"""Moiré: `mr`. A screen photograph, simulated: the image is shown on an RGB-stripe display
(3 x 3 sub-pixels per pixel), seen by a camera whose pixel grid is slightly rotated, scaled and
tilted against the screen's (the beat between the two grids is the moiré), blurred a little by
the optics, sampled through an RGGB Bayer filter with sensor noise, demosaicked, then warped
back onto the clean image's grid so LQ and GT stay aligned (after Liu et al. 2018).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from uir25m.degrade.mosaic import DEMOSAIC, demosaic_rggb, mosaic_rggb
from uir25m.degrade.params import sampler
from uir25m.degrade.pixels import pixel_io, to_uint8
from uir25m.degrade.registry import register

_SENSOR = {"demosaic": {"choice": list(DEMOSAIC)}, "noise": {"uniform": [0.5, 3.0]}}
MR_LEVELS: dict[str, dict[str, Any]] = {
    "light": {
        "angle": {"uniform": [-3.0, 3.0]},
        "scale": {"uniform": [0.98, 1.02]},
        "perspective": {"uniform": [0.0, 0.01]},
        "optics_blur": {"uniform": [1.0, 1.4]},
        **_SENSOR,
    },
    "strong": {
        "angle": {"uniform": [-6.0, 6.0]},
        "scale": {"uniform": [0.95, 1.05]},
        "perspective": {"uniform": [0.0, 0.02]},
        "optics_blur": {"uniform": [0.7, 1.0]},
        **_SENSOR,
    },
}

_SUBPIXELS = np.zeros((3, 3, 3), dtype=np.float32)
for _c in range(3):
    _SUBPIXELS[:, _c, _c] = 1.0  # vertical R, G, B stripes
_SUBPIXELS[2] *= 0.5  # the dark gap between pixel rows
_SUBPIXELS /= _SUBPIXELS.mean(axis=(0, 1), keepdims=True)  # keep each channel's mean brightness


mr_sample_params = sampler(MR_LEVELS, "moire_seed")


def camera_homography(h: int, w: int, angle: float, scale: float, perspective: float, seed: int) -> np.ndarray:
    """GT pixel coordinates -> camera pixel coordinates: rotation and scale about the centre plus
    a random tilt (corners moved by up to `perspective` of the short side)."""
    gen = np.random.default_rng(seed)
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    centre = np.float32([(w - 1) / 2, (h - 1) / 2])
    a = np.deg2rad(angle)
    rot = np.float32([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * np.float32(scale)
    dst = (src - centre) @ rot.T + centre
    dst += gen.uniform(-1, 1, (4, 2)).astype(np.float32) * np.float32(perspective * min(h, w))
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


@pixel_io
def mr_apply(
    image: np.ndarray, *, angle: float, scale: float, perspective: float, optics_blur: float,
    demosaic: str, noise: float, moire_seed: int,
) -> np.ndarray:
    """Photograph the image off an RGB-stripe screen; `noise` is a sigma on the 0-255 scale."""
    h, w, _ = image.shape
    screen = np.repeat(np.repeat(image, 3, axis=0), 3, axis=1) * np.tile(_SUBPIXELS, (h, w, 1))
    if optics_blur > 0:
        screen = cv2.GaussianBlur(screen, (0, 0), optics_blur)
    gt_to_cam = camera_homography(h, w, angle, scale, perspective, moire_seed)
    gt_to_screen = np.array([[3.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]])
    cam_to_screen = gt_to_screen @ np.linalg.inv(gt_to_cam)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    cam = cv2.warpPerspective(screen, cam_to_screen, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
    gen = np.random.default_rng(moire_seed + 1)
    cam = cam + gen.standard_normal(cam.shape, dtype=np.float32) * np.float32(noise / 255.0)
    cam = demosaic_rggb(mosaic_rggb(to_uint8(cam)), demosaic).astype(np.float32) / 255.0
    return cv2.warpPerspective(cam, gt_to_cam, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)


register("mr", levels=MR_LEVELS, sample_params=mr_sample_params, apply=mr_apply)
