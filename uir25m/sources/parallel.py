"""Parallel folders: LQ and GT in two folders, partners by name, optionally through a name map
(Rain13K `input/x.png` -> `target/x.png`; RESIDE `hazy/0001_0.8_0.2.jpg` -> `clear/0001.png`;
LOL-v2 `Low/low00001.png` -> `Normal/normal00001.png`; RainDrop `data/3_rain.png` -> `gt/3_clean.png`).

    layout: parallel
    params:
      lq_dir: hazy
      gt_dir: clear
      glob: "*.jpg"              # LQ files, relative to lq_dir (default "*"; "**/*.jpg" for subfolders)
      gt_glob: "*.png"           # GT files the part covers, relative to gt_dir (default: glob)
      rename:                    # optional: rules over the path relative to lq_dir; first match wins
        - {regex: "([^_/]+)_.*", replace: "\\1.png"}
"""
from __future__ import annotations

from typing import Any

from uir25m.sources.pairing import PartScan, pair
from uir25m.sources.paths import FileIndex, rules

REQUIRED = {"lq_dir", "gt_dir"}
OPTIONAL = {"glob", "gt_glob", "rename"}


def _join(folder: str, rel: str) -> str:
    return f"{folder.rstrip('/')}/{rel}" if folder else rel


def folders(params: dict[str, Any]) -> list[str]:
    """The folders this part reads (see discover: they identify the layout)."""
    return [params["lq_dir"], params["gt_dir"]]

def scan(index: FileIndex, params: dict[str, Any]) -> PartScan:
    lq_dir, gt_dir = params["lq_dir"], params["gt_dir"]
    glob = params.get("glob", "*")
    renames = rules(params["rename"]) if params.get("rename") else []
    cut = len(lq_dir.rstrip("/")) + 1 if lq_dir else 0

    def candidates(lq: str) -> list[str]:
        rel = lq[cut:]
        if not renames:
            return [_join(gt_dir, rel)]
        return [_join(gt_dir, g) for g in (r.apply(rel) for r in renames) if g is not None][:1]

    gt_files = index.glob(_join(gt_dir, params.get("gt_glob", glob)))
    return pair(index, index.glob(_join(lq_dir, glob)), candidates, gt_files)
