"""Nested scene folders: LQ files found by a glob over the whole tree, each GT path made from the
LQ path by a rule (GoPro `train/<scene>/blur/000047.png` -> `train/<scene>/sharp/000047.png`,
SIDD `..._NOISY_SRGB_010.PNG` -> `..._GT_SRGB_010.PNG`, LOL-Blur video folders).

    layout: nested
    params:
      glob: "train/*/blur/*.png"                       # the LQ files
      gt: {regex: "(.*)/blur/(.*)", replace: "\\1/sharp/\\2"}   # or a list, first existing wins
      gt_glob: "train/*/sharp/*.png"                   # optional: the GT files the part covers
"""
from __future__ import annotations

from typing import Any

from uir25m.sources.pairing import PartScan, pair
from uir25m.sources.paths import FileIndex, glob_folders, rules

REQUIRED = {"glob", "gt"}
OPTIONAL = {"gt_glob"}


def folders(params: dict[str, Any]) -> list[str]:
    """The folders this part reads ("" = the whole tree)."""
    return glob_folders(params["glob"]) + (glob_folders(params["gt_glob"]) if params.get("gt_glob") else [])

def scan(index: FileIndex, params: dict[str, Any]) -> PartScan:
    gt_rules = rules(params["gt"])
    candidates = lambda lq: [g for g in (r.apply(lq) for r in gt_rules) if g is not None]  # noqa: E731
    gt_files = index.glob(params["gt_glob"]) if params.get("gt_glob") else ()
    return pair(index, index.glob(params["glob"]), candidates, gt_files)
