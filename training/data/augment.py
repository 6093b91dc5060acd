"""Paired geometry for training: pad small images, take one random crop window, flips and a rot90,
drawn once per sample from its own seed and applied identically to LQ and GT (albumentations)."""
from __future__ import annotations

import os

import cv2
import numpy as np


def _albumentations():
    """albumentations, imported without its version check over the network (it runs at import
    unless NO_ALBUMENTATIONS_UPDATE is set); the caller's environment is left as it was."""
    import sys

    if "albumentations" in sys.modules:
        return sys.modules["albumentations"]
    key = "NO_ALBUMENTATIONS_UPDATE"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        import albumentations
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before
    return albumentations


class PairedCrop:
    """`(lq, gt, seed) -> (lq_crop, gt_crop)` for H x W x 3 uint8 arrays of equal size."""

    def __init__(self, crop: int = 256, flips: bool = True):
        A = _albumentations()

        self.crop = crop
        steps = [
            # reflect, not zeros: a pixelwise relation between LQ and GT survives the padding
            A.PadIfNeeded(min_height=crop, min_width=crop, position="center",
                          border_mode=cv2.BORDER_REFLECT_101, fill=0, fill_mask=0, p=1.0),
            A.RandomCrop(height=crop, width=crop, pad_if_needed=False, p=1.0),
        ]
        if flips:
            steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=1.0)]
        self.transform = A.Compose(steps, additional_targets={"gt": "image"}, strict=True, seed=0)

    def __call__(self, lq: np.ndarray, gt: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        if lq.shape != gt.shape:
            raise ValueError(f"LQ {lq.shape} and GT {gt.shape} differ in size")
        self.transform.set_random_seed(seed)
        out = self.transform(image=lq, gt=gt)
        return out["image"], out["gt"]
