"""Mixed types, composed from the single types' `apply` on float pixels (quantised once, at the end):
`b_j`, `b_r`, `b_ll_n`, `ll_h_r_s` (CDD-11's seven combinations) and `ds_n_b_j` (Real-ESRGAN's
second-order pipeline at scale 1).

Params of every mixed type are `{"stages": [{"op": ..., "params": {...}}, ...]}`; an op is a
single type's code or `resize` (to `factor` x the input size, `mode` area/bilinear/bicubic).
A level's spec is `{"stages": [[op, level], ...], "overrides": {op: {param: distribution}}}`.
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from uir25m.degrade import registry
from uir25m.degrade.params import draw, round6
from uir25m.degrade.pixels import pixel_io

RESIZE_MODES = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def _stages(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"stages": [list(p) for p in pairs], "overrides": {}}


B_J_LEVELS = {"default": {"stages": [["mb", "light"], ["j", "any"]],
                          "overrides": {"mb": {"length": {"uniform": [4.0, 20.0]}},
                                        "j": {"quality": {"int": [30, 80]}}}}}
B_R_LEVELS = {"default": _stages(("db", "light"), ("rd", "light")),
              "heavy": _stages(("db", "medium"), ("rd", "heavy"))}
B_LL_N_LEVELS = {"default": _stages(("mb", "any"), ("ll", "clean"), ("gn", "poisson_gaussian"))}
# CDD-11's combination folders; haze and weather live in the scene, low light at the camera
LL_H_R_S_LEVELS = {
    "low_haze": _stages(("h", "its"), ("ll", "dark")),
    "low_rain": _stages(("rs", "heavy"), ("ll", "dark")),
    "low_snow": _stages(("s", "medium"), ("ll", "dark")),
    "haze_rain": _stages(("h", "its"), ("rs", "heavy")),
    "haze_snow": _stages(("h", "its"), ("s", "medium")),
    "low_haze_rain": _stages(("h", "its"), ("rs", "heavy"), ("ll", "dark")),
    "low_haze_snow": _stages(("h", "its"), ("s", "medium"), ("ll", "dark")),
}
DS_N_B_J_LEVELS = {
    # Real-ESRGAN (train_realesrnet_x4plus.yml) at scale 1; noise in this engine's gn conventions
    "realesrgan": {
        "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5],
        "gaussian_noise_prob": 0.5, "noise_range": [1.0, 30.0], "poisson_scale_range": [0.002, 0.05],
        "gray_noise_prob": 0.4, "jpeg_range": [30, 95],
        "second_blur_prob": 0.8, "resize_prob2": [0.3, 0.4, 0.3], "resize_range2": [0.3, 1.2],
        "noise_range2": [1.0, 25.0], "poisson_scale_range2": [0.002, 0.03], "jpeg_range2": [30, 95],
        "final_sinc_prob": 0.8,
    },
}


def _sample_stages(rng: np.random.Generator, spec: dict[str, Any]) -> dict[str, Any]:
    overrides = spec.get("overrides") or {}
    stages = []
    for op, level in spec["stages"]:
        entry = registry.get(op)
        stages.append({"op": op, "level": level, "params": entry.sample_params(rng, level, entry.spec(level, overrides.get(op)))})
    return {"stages": stages}


def _resize(image: np.ndarray, factor: float, mode: str, size: tuple[int, int]) -> np.ndarray:
    h0, w0 = size
    h, w = max(8, int(round(h0 * factor))), max(8, int(round(w0 * factor)))
    return cv2.resize(image, (w, h), interpolation=RESIZE_MODES[mode])


def _run(image: np.ndarray, stages: list[dict[str, Any]]) -> np.ndarray:
    size = image.shape[:2]
    x = image
    for stage in stages:
        op, params = stage["op"], stage["params"]
        if op == "resize":
            x = _resize(x, params["factor"], params["mode"], size)
        else:
            x = registry.get(op).apply(x, **params)
    if x.shape[:2] != size:
        raise ValueError(f"mixed stages changed the image size from {size} to {x.shape[:2]}")
    return x


@pixel_io
def apply_stages(image: np.ndarray, *, stages: list[dict[str, Any]]) -> np.ndarray:
    """Run the stages in order (each on float pixels)."""
    return _run(image, stages)


def _stage_sampler(levels: dict[str, Any]):
    def sample_params(rng: np.random.Generator, level: str, spec: dict | None = None) -> dict[str, Any]:
        return _sample_stages(rng, spec if spec is not None else levels[level])

    return sample_params


# --- Real-ESRGAN second order at scale 1 ---------------------------------------------------------

def _resize_stage(rng: np.random.Generator, probs: list[float], scale_range: list[float]) -> dict[str, Any]:
    kind = ("up", "down", "keep")[int(rng.choice(3, p=np.asarray(probs) / sum(probs)))]
    if kind == "up":
        factor = rng.uniform(1.0, scale_range[1])
    elif kind == "down":
        factor = rng.uniform(scale_range[0], 1.0)
    else:
        factor = 1.0
    mode = ("area", "bilinear", "bicubic")[int(rng.integers(3))]
    return {"op": "resize", "level": kind, "params": {"factor": round6(factor), "mode": mode}}


def _noise_stage(rng: np.random.Generator, s: dict[str, Any], sigma_range: list[float], poisson_range: list[float]) -> dict[str, Any]:
    gn = registry.get("gn")
    gray = bool(rng.random() < s["gray_noise_prob"])
    if rng.random() < s["gaussian_noise_prob"]:
        level, spec = "gaussian", {"noise": "gaussian", "sigma": {"uniform": sigma_range}, "gray": gray}
    else:
        level, spec = "poisson", {"noise": "poisson", "scale": {"loguniform": poisson_range}, "gray": gray}
    return {"op": "gn", "level": level, "params": gn.sample_params(rng, level, spec)}


def _jpeg_stage(rng: np.random.Generator, q_range: list[int]) -> dict[str, Any]:
    return {"op": "j", "level": "any", "params": {"quality": int(rng.integers(q_range[0], q_range[1] + 1))}}


def _blur_stage(rng: np.random.Generator, level: str) -> dict[str, Any]:
    gb = registry.get("gb")
    return {"op": "gb", "level": level, "params": gb.sample_params(rng, level, None)}


def _final_sinc(rng: np.random.Generator, prob: float) -> list[dict[str, Any]]:
    if rng.random() >= prob:
        return []
    size = int(draw(rng, {"odd": [7, 21]}))
    omega = round6(rng.uniform(math.pi / 3, math.pi))
    return [{"op": "gb", "level": "sinc", "params": {"kernel_size": size, "kind": "sinc", "omega_c": omega}}]


def ds_n_b_j_sample_params(rng: np.random.Generator, level: str, spec: dict | None = None) -> dict[str, Any]:
    """Draw the whole second-order pipeline: blur, resize, noise, JPEG, then a milder second round
    and a final resize back to the input size with an optional sinc filter, in either order with
    the last JPEG."""
    s = spec if spec is not None else DS_N_B_J_LEVELS[level]
    stages = [
        _blur_stage(rng, "realesrgan"),
        _resize_stage(rng, s["resize_prob"], s["resize_range"]),
        _noise_stage(rng, s, s["noise_range"], s["poisson_scale_range"]),
        _jpeg_stage(rng, s["jpeg_range"]),
    ]
    if rng.random() < s["second_blur_prob"]:
        stages.append(_blur_stage(rng, "realesrgan_second"))
    stages.append(_resize_stage(rng, s["resize_prob2"], s["resize_range2"]))
    stages.append(_noise_stage(rng, s, s["noise_range2"], s["poisson_scale_range2"]))
    back = {"op": "resize", "level": "back", "params": {"factor": 1.0, "mode": ("area", "bilinear", "bicubic")[int(rng.integers(3))]}}
    sinc = _final_sinc(rng, s["final_sinc_prob"])
    last_jpeg = _jpeg_stage(rng, s["jpeg_range2"])
    if rng.random() < 0.5:
        stages += [back, *sinc, last_jpeg]
    else:
        stages += [last_jpeg, back, *sinc]
    return {"stages": stages}


registry.register("b_j", levels=B_J_LEVELS, sample_params=_stage_sampler(B_J_LEVELS), apply=apply_stages)
registry.register("b_r", levels=B_R_LEVELS, sample_params=_stage_sampler(B_R_LEVELS), apply=apply_stages)
registry.register("b_ll_n", levels=B_LL_N_LEVELS, sample_params=_stage_sampler(B_LL_N_LEVELS), apply=apply_stages)
registry.register("ll_h_r_s", levels=LL_H_R_S_LEVELS, sample_params=_stage_sampler(LL_H_R_S_LEVELS), apply=apply_stages)
registry.register("ds_n_b_j", levels=DS_N_B_J_LEVELS, sample_params=ds_n_b_j_sample_params, apply=apply_stages)
