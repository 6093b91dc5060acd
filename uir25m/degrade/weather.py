"""Weather: `h` (haze), `rs` (rain streaks), `rd` (raindrops), `rsd` (both), `s` (snow).

Haze follows the atmospheric scattering model I = J t + A (1 - t), t = exp(-beta d), with a
synthetic depth map (a vertical ramp blended with a fractal random field: far at the top) because
clean-only sources carry no depth. Rain streaks are motion-blurred random seeds screened over
the image; raindrops are small refracting lenses (an inverted, shrunken view of the scene,
soft-edged); snow is three layers of motion-blurred flakes over a faint veil.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from uir25m.degrade import kernels
from uir25m.degrade.params import sampler
from uir25m.degrade.pixels import filter2d, pixel_io
from uir25m.degrade.registry import register

# --- haze --------------------------------------------------------------------------------------

_DEPTH = {"gradient": {"uniform": [0.3, 0.8]}, "roughness": {"uniform": [0.5, 0.8]}}
H_LEVELS: dict[str, dict[str, Any]] = {
    # RESIDE OTS grid: A in {0.8 .. 1.0}, beta in {0.04 .. 0.2}; synthetic depth up to 10 units
    "ots": {
        "A": {"choice": [0.8, 0.85, 0.9, 0.95, 1.0]},
        "beta": {"choice": [0.04, 0.06, 0.08, 0.1, 0.12, 0.16, 0.2]},
        "depth_max": 10.0,
        **_DEPTH,
    },
    # RESIDE ITS ranges: A ~ U(0.7, 1.0), beta ~ U(0.6, 1.8); depth normalised to [0, 1]
    "its": {"A": {"uniform": [0.7, 1.0]}, "beta": {"uniform": [0.6, 1.8]}, "depth_max": 1.0, **_DEPTH},
}


h_sample_params = sampler(H_LEVELS, "depth_seed")


def synthetic_depth(height: int, width: int, *, gradient: float, roughness: float, depth_seed: int) -> np.ndarray:
    """A smooth depth map in [0, 1] (1 = far), far towards the top of the frame."""
    plasma = kernels.smooth_field(height, width, roughness, depth_seed)
    ramp = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]
    depth = gradient * ramp + (1.0 - gradient) * plasma
    depth = cv2.GaussianBlur(depth.astype(np.float32), (0, 0), max(height, width) / 64.0)
    lo, hi = float(depth.min()), float(depth.max())
    return (depth - lo) / max(hi - lo, 1e-6)


@pixel_io
def h_apply(
    image: np.ndarray, *, A: float, beta: float, depth_max: float, gradient: float, roughness: float,
    depth_seed: int,
) -> np.ndarray:
    """Atmospheric scattering model over a synthetic depth map."""
    h, w, _ = image.shape
    d = depth_max * synthetic_depth(h, w, gradient=gradient, roughness=roughness, depth_seed=depth_seed)
    t = np.exp(-beta * d)[..., None].astype(np.float32)
    return image * t + np.float32(A) * (1.0 - t)


# --- rain streaks ------------------------------------------------------------------------------

RS_LEVELS: dict[str, dict[str, Any]] = {
    "light": {
        "density": {"uniform": [0.001, 0.004]},
        "length": {"uniform": [10.0, 30.0]},
        "angle": {"uniform": [-20.0, 20.0]},
        "width": {"uniform": [0.3, 0.8]},
        "intensity": {"uniform": [0.5, 0.8]},
    },
    "heavy": {
        "density": {"uniform": [0.004, 0.015]},
        "length": {"uniform": [20.0, 50.0]},
        "angle": {"uniform": [-25.0, 25.0]},
        "width": {"uniform": [0.5, 1.2]},
        "intensity": {"uniform": [0.6, 0.9]},
    },
}


rs_sample_params = sampler(RS_LEVELS, "streak_seed")


def rain_layer(
    height: int, width_px: int, *, density: float, length: float, angle: float, width: float, seed: int
) -> np.ndarray:
    """A [0, 1] streak layer: random seeds of random brightness, blurred, smeared along `angle`."""
    gen = np.random.default_rng(seed)
    seeds = (gen.random((height, width_px)) < density).astype(np.float32)
    seeds *= gen.uniform(0.4, 1.0, (height, width_px)).astype(np.float32)
    if width > 0:
        seeds = cv2.GaussianBlur(seeds, (0, 0), width)
    streaks = filter2d(seeds, kernels.line(length, angle))
    peak = float(streaks.max())
    return streaks / peak if peak > 0 else streaks


@pixel_io
def rs_apply(
    image: np.ndarray, *, density: float, length: float, angle: float, width: float, intensity: float,
    streak_seed: int,
) -> np.ndarray:
    """Screen-blend a rain-streak layer over the image."""
    h, w, _ = image.shape
    layer = np.clip(1.6 * rain_layer(h, w, density=density, length=length, angle=angle, width=width, seed=streak_seed), 0, 1)
    layer = (layer * np.float32(intensity))[..., None]
    return 1.0 - (1.0 - image) * (1.0 - layer)


# --- raindrops ---------------------------------------------------------------------------------

RD_LEVELS: dict[str, dict[str, Any]] = {
    "light": {
        "count": {"int": [8, 25]},
        "radius": {"uniform": [0.02, 0.06]},  # fraction of the short side
        "magnification": {"uniform": [0.3, 0.7]},
        "blur": {"uniform": [1.0, 2.5]},
    },
    "heavy": {
        "count": {"int": [25, 70]},
        "radius": {"uniform": [0.02, 0.08]},
        "magnification": {"uniform": [0.3, 0.7]},
        "blur": {"uniform": [1.5, 3.5]},
    },
}


rd_sample_params = sampler(RD_LEVELS, "drop_seed")


@pixel_io
def rd_apply(
    image: np.ndarray, *, count: int, radius: float, magnification: float, blur: float, drop_seed: int
) -> np.ndarray:
    """Raindrops on the lens: each drop shows an inverted, shrunken, softened view of the scene
    around it; drop sizes vary around `radius` (a fraction of the short side)."""
    gen = np.random.default_rng(drop_seed)
    h, w, _ = image.shape
    mapx, mapy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    alpha = np.zeros((h, w), dtype=np.float32)
    short = min(h, w)
    for _ in range(int(count)):
        r = max(2.0, float(gen.uniform(0.5, 1.5)) * radius * short)
        aspect = float(gen.uniform(0.75, 1.25))
        cx, cy = float(gen.uniform(0, w)), float(gen.uniform(0, h))
        rx, ry = r * aspect, r
        x0, x1 = max(0, int(cx - rx) - 1), min(w, int(cx + rx) + 2)
        y0, y1 = max(0, int(cy - ry) - 1), min(h, int(cy + ry) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        dx, dy = (xs - cx) / rx, (ys - cy) / ry
        d2 = dx * dx + dy * dy
        inside = d2 < 1.0
        # a ball lens: inverted and shrunk, stronger towards the rim (barrel distortion)
        k = -magnification * (1.0 + 0.4 * d2)
        sx = cx + (xs - cx) * k
        sy = cy - 0.6 * ry + (ys - cy) * k  # drops refract light from above them
        mapx[y0:y1, x0:x1] = np.where(inside, sx, mapx[y0:y1, x0:x1])
        mapy[y0:y1, x0:x1] = np.where(inside, sy, mapy[y0:y1, x0:x1])
        edge = np.clip((1.0 - d2) / 0.25, 0.0, 1.0)
        alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], np.where(inside, edge, 0.0))
    seen = cv2.remap(image, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    seen = cv2.GaussianBlur(seen, (0, 0), blur)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.5, blur / 2))[..., None]
    rim = np.float32(0.85) + np.float32(0.15) * alpha  # drops darken slightly towards their rims
    return image * (1.0 - alpha) + seen * rim * alpha


# --- rain streaks + raindrops ------------------------------------------------------------------

RSD_LEVELS: dict[str, dict[str, Any]] = {
    "light": {"streaks": RS_LEVELS["light"], "drops": RD_LEVELS["light"]},
    "heavy": {"streaks": RS_LEVELS["heavy"], "drops": RD_LEVELS["heavy"]},
}


def rsd_sample_params(rng: np.random.Generator, level: str, spec: dict | None = None) -> dict[str, Any]:
    s = spec if spec is not None else RSD_LEVELS[level]
    return {
        "streaks": rs_sample_params(rng, level, s["streaks"]),
        "drops": rd_sample_params(rng, level, s["drops"]),
    }


@pixel_io
def rsd_apply(image: np.ndarray, *, streaks: dict[str, Any], drops: dict[str, Any]) -> np.ndarray:
    """Rain streaks in the scene, then drops on the lens."""
    return rd_apply(rs_apply(image, **streaks), **drops)


# --- snow --------------------------------------------------------------------------------------

_SNOW_LAYERS = ((0.5, 2.0), (1.0, 1.0), (1.8, 0.25))  # (size factor, density factor): far .. near
S_LEVELS: dict[str, dict[str, Any]] = {
    "small": {
        "density": {"uniform": [0.0008, 0.002]},
        "size": {"uniform": [0.5, 0.9]},
        "length": {"uniform": [1.0, 4.0]},
        "angle": {"uniform": [-30.0, 30.0]},
        "opacity": {"uniform": [0.7, 1.0]},
        "veil": {"uniform": [0.0, 0.08]},
    },
    "medium": {
        "density": {"uniform": [0.001, 0.003]},
        "size": {"uniform": [0.8, 1.4]},
        "length": {"uniform": [2.0, 6.0]},
        "angle": {"uniform": [-30.0, 30.0]},
        "opacity": {"uniform": [0.75, 1.0]},
        "veil": {"uniform": [0.03, 0.12]},
    },
    "large": {
        "density": {"uniform": [0.0015, 0.004]},
        "size": {"uniform": [1.2, 2.2]},
        "length": {"uniform": [3.0, 9.0]},
        "angle": {"uniform": [-30.0, 30.0]},
        "opacity": {"uniform": [0.8, 1.0]},
        "veil": {"uniform": [0.05, 0.18]},
    },
}


s_sample_params = sampler(S_LEVELS, "flake_seed")


@pixel_io
def s_apply(
    image: np.ndarray, *, density: float, size: float, length: float, angle: float, opacity: float,
    veil: float, flake_seed: int,
) -> np.ndarray:
    """Composite three layers of falling flakes (far: small and many; near: large and few)."""
    gen = np.random.default_rng(flake_seed)
    h, w, _ = image.shape
    cover = np.zeros((h, w), dtype=np.float32)
    for size_f, dens_f in _SNOW_LAYERS:
        seeds = (gen.random((h, w)) < density * dens_f).astype(np.float32)
        seeds *= gen.uniform(0.6, 1.0, (h, w)).astype(np.float32)
        sigma = max(0.3, size * size_f)
        flakes = cv2.GaussianBlur(seeds, (0, 0), sigma) * np.float32(2 * np.pi * sigma * sigma)
        flakes = filter2d(flakes, kernels.line(max(1.0, length * size_f), angle))
        flakes *= np.float32(max(1.0, length * size_f) ** 0.5)
        layer = np.clip(flakes, 0.0, 1.0) * np.float32(opacity)
        cover = 1.0 - (1.0 - cover) * (1.0 - layer)
    veiled = image * np.float32(1.0 - veil) + np.float32(0.9 * veil)
    cover = cover[..., None]
    return veiled * (1.0 - cover) + cover


register("h", levels=H_LEVELS, sample_params=h_sample_params, apply=h_apply)
register("rs", levels=RS_LEVELS, sample_params=rs_sample_params, apply=rs_apply)
register("rd", levels=RD_LEVELS, sample_params=rd_sample_params, apply=rd_apply)
register("rsd", levels=RSD_LEVELS, sample_params=rsd_sample_params, apply=rsd_apply)
register("s", levels=S_LEVELS, sample_params=s_sample_params, apply=s_apply, default_level="medium")
