"""Multi-type folders: several degraded folders sharing one clean folder (CDD-11's
`train/{low,haze,...,low_haze_snow}/000001.png` with `train/clear/000001.png`). The folder name
becomes the sample's variant.

    layout: multi_type
    params:
      base: train                 # the folder holding them ("" = the root)
      gt_dir: clear
      lq_dirs: [low_haze, low_rain, low_snow, haze_rain, haze_snow, low_haze_rain, low_haze_snow]
      glob: "*.png"               # default "*"
"""
from __future__ import annotations

from typing import Any

from uir25m.sources.pairing import PartScan, pair
from uir25m.sources.paths import FileIndex

REQUIRED = {"gt_dir", "lq_dirs"}
OPTIONAL = {"base", "glob"}


def folders(params: dict[str, Any]) -> list[str]:
    """The clean folder and every degraded folder."""
    base = params.get("base", "").rstrip("/")
    return [f"{base}/{d}" if base else d for d in [params["gt_dir"], *params["lq_dirs"]]]

def scan(index: FileIndex, params: dict[str, Any]) -> PartScan:
    base = params.get("base", "").rstrip("/")
    prefix = f"{base}/" if base else ""
    glob = params.get("glob", "*")
    out = PartScan()
    for folder in params["lq_dirs"]:
        lq_root = f"{prefix}{folder}/"
        part = pair(index, index.glob(f"{lq_root}{glob}"),
                    lambda lq: [f"{prefix}{params['gt_dir']}/{lq[len(lq_root):]}"], variant=folder)
        out.pairs += part.pairs
        out.rejects += part.rejects
        out.lq_files |= part.lq_files
    out.gt_files = set(index.glob(f"{prefix}{params['gt_dir']}/{glob}"))
    return out
