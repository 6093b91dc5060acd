"""Blur kernels: the Real-ESRGAN family (Gaussian, generalised, plateau, sinc), random camera
trajectories (Boracchi & Foi 2012) and straight motion lines. Pure functions of their arguments.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import special

GAUSSIAN_FAMILY = (
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso",
)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    r = (size - 1) / 2.0
    ax = np.arange(size, dtype=np.float64) - r
    return np.meshgrid(ax, ax)  # xx, yy


def gaussian_family(
    size: int, kind: str, sigma_x: float, sigma_y: float, rotation: float, beta: float = 1.0
) -> np.ndarray:
    """A normalised size x size kernel of one of the six Real-ESRGAN shapes.

    `rotation` in radians; `beta` is the shape exponent of the generalised and plateau kernels.
    Isotropic kinds use sigma_x for both axes and ignore the rotation.
    """
    if kind not in GAUSSIAN_FAMILY:
        raise ValueError(f"unknown kernel kind {kind!r}; kinds: {', '.join(GAUSSIAN_FAMILY)}")
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, rotation = sigma_x, 0.0
    c, s = math.cos(rotation), math.sin(rotation)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    inv = np.linalg.inv(cov)
    xx, yy = _grid(size)
    q = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy  # d^T S^-1 d
    if kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(q, beta))
    elif kind.startswith("plateau"):
        k = 1.0 / (np.power(q, beta) + 1.0)
    else:
        k = np.exp(-0.5 * q)
    return (k / k.sum()).astype(np.float32)


def sinc(size: int, omega_c: float, pad_to: int = 0) -> np.ndarray:
    """Circular low-pass (2-D sinc / Airy) kernel with cut-off `omega_c` (radians per pixel)."""
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = omega_c * special.j1(omega_c * r) / (2 * np.pi * r)
    k[r == 0] = omega_c**2 / (4 * np.pi)
    k = k / k.sum()
    if pad_to > size:
        p = (pad_to - size) // 2
        k = np.pad(k, ((p, p), (p, p)))
    return k.astype(np.float32)


def trajectory(
    length: float,
    *,
    exposure: float,
    centripetal: float,
    big_shake: float,
    gaussian_shake: float,
    seed: int,
    steps: int = 1000,
) -> np.ndarray:
    """A random camera-shake trajectory (complex positions, pixels), after Boracchi & Foi (2012).

    Each step keeps a constant speed (`length` spread over `steps`), is pulled back towards the
    origin (`centripetal`), jitters (`gaussian_shake`) and now and then turns abruptly
    (probability `big_shake * exposure`).
    """
    rng = np.random.default_rng(seed)
    step = length / (steps - 1)
    turn = rng.random(steps) < big_shake * exposure
    turn_angle = np.pi + (rng.random(steps) - 0.5)
    jitter = rng.standard_normal(steps) + 1j * rng.standard_normal(steps)
    v = complex(np.exp(1j * rng.uniform(0.0, 2.0 * np.pi))) * step
    x = np.zeros(steps, dtype=np.complex128)
    pos = 0j
    for t in range(steps - 1):
        dv = exposure * (gaussian_shake * jitter[t] - centripetal * pos) * step
        if turn[t]:
            dv += 2.0 * v * np.exp(1j * turn_angle[t])
        v += dv
        mag = abs(v)
        v = v / mag * step if mag > 0 else step + 0j
        pos += v
        x[t + 1] = pos
    return x


def rasterise(points: np.ndarray) -> np.ndarray:
    """Splat complex trajectory points bilinearly onto the smallest odd square, centred on the
    centroid; the result sums to one."""
    pts = points - points.mean()
    half = int(math.ceil(max(np.abs(pts.real).max(), np.abs(pts.imag).max()))) + 1
    size = 2 * half + 1
    x = pts.real + half
    y = pts.imag + half
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    fx = x - x0
    fy = y - y0
    k = np.zeros((size + 1, size + 1), dtype=np.float64)
    np.add.at(k, (y0, x0), (1 - fx) * (1 - fy))
    np.add.at(k, (y0, x0 + 1), fx * (1 - fy))
    np.add.at(k, (y0 + 1, x0), (1 - fx) * fy)
    np.add.at(k, (y0 + 1, x0 + 1), fx * fy)
    k = k[:size, :size]
    return (k / k.sum()).astype(np.float32)


def line(length: float, angle_deg: float) -> np.ndarray:
    """A normalised straight motion line of `length` pixels; angle 0 = vertical, positive =
    top leaning right."""
    length = max(1.0, float(length))
    size = int(math.ceil(length)) | 1
    k = np.zeros((size, size), dtype=np.float32)
    c = (size - 1) / 2.0
    a = math.radians(angle_deg)
    dx, dy = math.sin(a) * (length - 1) / 2.0, math.cos(a) * (length - 1) / 2.0
    p0 = (int(round((c - dx) * 16)), int(round((c - dy) * 16)))
    p1 = (int(round((c + dx) * 16)), int(round((c + dy) * 16)))
    cv2.line(k, p0, p1, 1.0, thickness=1, lineType=cv2.LINE_AA, shift=4)
    s = k.sum()
    if s <= 0:
        k[size // 2, size // 2] = 1.0
        s = 1.0
    return k / s


def disk(radius: int, alias_blur: float) -> np.ndarray:
    """Defocus PSF: a binary disk of `radius` on a grid of at least 17 x 17, normalised, then
    Gaussian-smoothed (3 x 3 for radius <= 8, else 5 x 5) with sigma `alias_blur` to soften its
    aliased rim; the construction of imagecorruptions' `disk`."""
    half = max(8, int(radius))
    ax = np.arange(-half, half + 1, dtype=np.float32)
    xx, yy = np.meshgrid(ax, ax)
    k = ((xx * xx + yy * yy) <= radius * radius).astype(np.float32)
    k /= k.sum()
    ksize = 3 if radius <= 8 else 5
    k = cv2.GaussianBlur(k, (ksize, ksize), alias_blur)
    return k / k.sum()


def smooth_field(height: int, width: int, roughness: float, seed: int) -> np.ndarray:
    """A fractal (value-noise) random field in [0, 1]: octaves of bicubically upsampled noise on
    grids of 2, 4, 8, ... cells, octave k weighted roughness**k."""
    gen = np.random.default_rng(seed)
    field = np.zeros((height, width), dtype=np.float32)
    cells, weight = 2, 1.0
    while cells <= max(height, width) // 2:
        grid = gen.random((cells + 1, cells + 1)).astype(np.float32)
        field += np.float32(weight) * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        cells *= 2
        weight *= roughness
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)
