"""Clean-only images, for the synthetic types (BSD400, WED, DIV2K, Kodak24, ...).

    layout: clean
    params:
      glob: "*.png"               # or a list of globs
      exclude: "_LR\\.png$"       # optional: a regex; matching files are not clean images
"""
from __future__ import annotations

import re
from typing import Any

from uir25m.sources.pairing import Pair, PartScan
from uir25m.sources.paths import FileIndex, glob_folders

REQUIRED = {"glob"}
OPTIONAL = {"exclude"}


def folders(params: dict[str, Any]) -> list[str]:
    """The folders the globs read beneath ("" = the whole tree; none for files at the top)."""
    globs = params["glob"] if isinstance(params["glob"], list) else [params["glob"]]
    return sorted({f for g in globs for f in glob_folders(g)})

def scan(index: FileIndex, params: dict[str, Any]) -> PartScan:
    globs = params["glob"] if isinstance(params["glob"], list) else [params["glob"]]
    exclude = re.compile(params["exclude"]) if params.get("exclude") else None
    found = sorted({f for g in globs for f in index.glob(g) if not (exclude and exclude.search(f))})
    return PartScan(pairs=[Pair("", f) for f in found], gt_files=set(found))
