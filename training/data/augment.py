"""Paired geometry for training: pad a small image, one random crop window, flips and a rot90,
drawn once per sample from its own seed and applied identically to LQ and GT.

The parameters are drawn here (one numpy Generator per sample); the operations are
albumentations' functional kernels (reflect padding, crop, flips, rot90). Its `Compose` pipeline
draws and applies the same things but costs ~0.2 ms per pair in bookkeeping and copies, 10-20 %
of the loader's time on small tiles (tools/bench_stream.py); the kernels cost ~10 us.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import cv2
import numpy as np


def _albumentations():
    """albumentations, imported without its version check over the network (it runs at import
    unless NO_ALBUMENTATIONS_UPDATE is set); the caller's environment is left as it was."""
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


@dataclass(frozen=True)
class Geometry:
    """One sample's draw: padding (top, bottom, left, right), the crop's corner, flips, rot90 turns."""

    pad: tuple[int, int, int, int]
    y: int
    x: int
    hflip: bool
    vflip: bool
    turns: int


class PairedCrop:
    """`(lq, gt, seed) -> (lq_crop, gt_crop)` for H x W x 3 uint8 arrays of equal size."""

    def __init__(self, crop: int = 256, flips: bool = True):
        _albumentations()
        from albumentations.augmentations.crops import functional as fcrop
        from albumentations.augmentations.geometric import functional as fgeo

        self.crop, self.flips = crop, flips
        self._crop, self._geo = fcrop, fgeo

    def draw(self, height: int, width: int, seed: int) -> Geometry:
        """The geometry of one sample (centre reflect-padding to the crop size, as PadIfNeeded).
        `seed` is a uniform 63-bit number (a sha256 of the sample's draw): its digits give the
        window and the flips directly (a Generator per sample would cost more than the crop)."""
        c = self.crop
        ph, pw = max(0, c - height), max(0, c - width)
        pad = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
        ny, nx = height + ph - c + 1, width + pw - c + 1
        s = int(seed)
        y, s = s % ny, s // ny
        x, s = s % nx, s // nx
        if not self.flips:
            return Geometry(pad, y, x, False, False, 0)
        return Geometry(pad, y, x, bool(s & 1), bool(s & 2), (s >> 2) & 3)

    def apply(self, image: np.ndarray, g: Geometry) -> np.ndarray:
        if any(g.pad):  # reflect, not zeros: a pixelwise relation between LQ and GT survives the padding
            image = self._geo.pad_with_params(image, *g.pad, border_mode=cv2.BORDER_REFLECT_101, value=0)
        image = self._crop.crop(image, g.x, g.y, g.x + self.crop, g.y + self.crop)
        if g.hflip:
            image = self._geo.hflip(image)
        if g.vflip:
            image = self._geo.vflip(image)
        return self._geo.rot90(image, g.turns) if g.turns else image

    def __call__(self, lq: np.ndarray, gt: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        if lq.shape != gt.shape:
            raise ValueError(f"LQ {lq.shape} and GT {gt.shape} differ in size")
        g = self.draw(gt.shape[0], gt.shape[1], seed)
        return self.apply(lq, g), self.apply(gt, g)
