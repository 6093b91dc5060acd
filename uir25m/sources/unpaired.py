"""No-reference images: real-world test sets with no clean counterpart (RTTS, DICM, LIME, MEF,
NPE, VV, CUHK, PixelDP, ...). Each image becomes a pair with itself, variant `no_reference`,
as MaskDCPT's no-GT test configs do: the GT member is a byte-identical copy of the LQ, so only
no-reference metrics make sense on these samples.

    layout: unpaired
    params:
      glob: "*.png"               # or a list of globs
      exclude: "\\.txt$"          # optional regex
"""
from __future__ import annotations

import re
from typing import Any

from uir25m.sources.pairing import Pair, PartScan
from uir25m.sources.paths import FileIndex, glob_folders

REQUIRED = {"glob"}
OPTIONAL = {"exclude"}
VARIANT = "no_reference"


def folders(params: dict[str, Any]) -> list[str]:
    """The folders the globs read beneath ("" = the whole tree; none for files at the top)."""
    globs = params["glob"] if isinstance(params["glob"], list) else [params["glob"]]
    return sorted({f for g in globs for f in glob_folders(g)})

def scan(index: FileIndex, params: dict[str, Any]) -> PartScan:
    globs = params["glob"] if isinstance(params["glob"], list) else [params["glob"]]
    exclude = re.compile(params["exclude"]) if params.get("exclude") else None
    found = sorted({f for g in globs for f in index.glob(g) if not (exclude and exclude.search(f))})
    return PartScan(pairs=[Pair(f, f, VARIANT) for f in found], lq_files=set(found))
