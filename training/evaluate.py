"""Evaluate a restoration network on whole test pairs with the paper's protocol: reflect-pad to
the model's size multiple, restore, crop back, clamp, then RGB PSNR / SSIM without border crop
(`training.metrics`) and optional pyiqa perceptual metrics; per-type means, the mean over types
and over images; Markdown and JSON renderings."""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from training import metrics
from training.restore import (
    forward_padded,
    save_png,
    size_multiple,
    to_tensor,
    to_uint8,
)
from uir25m import atomic


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key) or "_"


def evaluate(model: torch.nn.Module, pairs: Iterable[Any], *, image_range: float = 1.0,
             perceptual: Sequence[str | metrics.PerceptualMetric] = (), save_images: str | os.PathLike | None = None,
             device: torch.device | str = "cpu", amp: bool = False, progress: bool = True) -> dict[str, Any]:
    """Restore every pair (`training.pairs.Pair`: key, code, lq, gt as H x W x 3 uint8 RGB) and
    score it against its GT (the model is moved to `device` and put in eval mode). `perceptual`: pyiqa metric names (or ready `PerceptualMetric`s),
    created before the first image so a missing extra or weight fails fast. `save_images`: write
    each restoration as <dir>/<type>/<key>.png. Returns the report: `protocol`, `types`
    ({code: {count, psnr, ssim, <perceptual>...}} in the order met), `mean_over_types`,
    `mean_over_images`, `count`, `images` (per-image values)."""
    metrics.check_image_range(image_range)
    scorers = [m if isinstance(m, metrics.PerceptualMetric) else metrics.perceptual_metric(m, device=str(device))
               for m in perceptual]
    names = ["psnr", "ssim", *(m.name for m in scorers)]
    model = model.to(device).eval()
    out_root = Path(save_images) if save_images is not None else None
    images: list[dict[str, Any]] = []
    for pair in tqdm(pairs, desc="eval", unit="img", disable=not progress):
        restored_t = forward_padded(model, to_tensor(pair.lq, device), amp=amp)
        restored = restored_t[0].permute(1, 2, 0).cpu().double().numpy()
        gt = to_tensor(pair.gt)[0].permute(1, 2, 0).double().numpy()  # float32 k/255 like the output (BasicSR)
        row: dict[str, Any] = {"key": pair.key, "type": pair.code, "source": getattr(pair, "source", None),
                               "psnr": metrics.psnr(restored, gt, image_range),
                               "ssim": metrics.ssim(restored, gt, image_range)}
        if scorers:
            img = metrics.prepare(restored, image_range) / image_range  # once per image, shared by the scorers
            for scorer in scorers:
                row[scorer.name] = scorer(img, gt if scorer.full_reference else None)
        images.append(row)
        if out_root is not None:
            save_png(out_root / _safe_name(pair.code) / f"{_safe_name(pair.key)}.png", to_uint8(restored_t))
    types: dict[str, dict[str, Any]] = {}
    for code in dict.fromkeys(r["type"] for r in images):
        rows = [r for r in images if r["type"] == code]
        types[code] = {"count": len(rows), **{n: _mean([r[n] for r in rows]) for n in names}}
    return {
        "protocol": {"color": "RGB", "crop_border": 0, "image_range": float(image_range), "clamp": [0.0, 1.0],
                     "pad": f"reflect, bottom/right, to a multiple of {size_multiple(model)}",
                     "ssim": "11x11 Gaussian (sigma 1.5), valid region, per channel then averaged",
                     "metrics": names, "lower_better": [m.name for m in scorers if m.lower_better]},
        "types": types,
        "mean_over_types": {"count": len(types), **{n: _mean([t[n] for t in types.values()]) for n in names}},
        "mean_over_images": {"count": len(images), **{n: _mean([r[n] for r in images]) for n in names}},
        "count": len(images),
        "images": images,
    }


def _finite(value: Any) -> Any:
    """JSON-safe values: non-finite floats become null (a PSNR of identical images is +inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(report: dict[str, Any]) -> str:
    """Strict JSON (no NaN/Infinity tokens: non-finite values are null)."""
    return json.dumps(_finite(report), indent=2, allow_nan=False)


def _cell(name: str, value: float) -> str:
    if not math.isfinite(value):
        return "inf" if value > 0 else "n/a"
    return f"{value:.2f}" if name == "psnr" else f"{value:.4f}"


def to_markdown(report: dict[str, Any], title: str | None = None) -> str:
    """A Markdown table: one row per type, then the mean over types and over images."""
    names = report["protocol"]["metrics"]
    heads = ["PSNR" if n == "psnr" else "SSIM" if n == "ssim" else n + (" ↓" if n in report["protocol"]["lower_better"] else "")
             for n in names]
    p = report["protocol"]
    lines = [f"## {title}", ""] if title else []
    lines += [f"RGB, no border crop, image_range {p['image_range']:g}, {p['pad']}.", "",
              "| type | images | " + " | ".join(heads) + " |", "|---|---:|" + "---:|" * len(names)]
    for code, row in report["types"].items():
        lines.append(f"| {code} | {row['count']} | " + " | ".join(_cell(n, row[n]) for n in names) + " |")
    for label, key, unit in (("mean over types", "mean_over_types", "types"), ("mean over images", "mean_over_images", "")):
        row = report[key]
        count = f"{row['count']} {unit}".strip()
        lines.append(f"| **{label}** | {count} | " + " | ".join(f"**{_cell(n, row[n])}**" for n in names) + " |")
    return "\n".join(lines) + "\n"


def write_report(path: str | os.PathLike, text: str) -> None:
    """Write a rendered report (Markdown or JSON) atomically, ending in one newline."""
    atomic.write_bytes(path, (text.rstrip("\n") + "\n").encode())
