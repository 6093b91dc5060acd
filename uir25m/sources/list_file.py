"""List files: pairs read from a text file of relative paths (RealBlur's
`RealBlur_J_train_list.txt`: one "gt_path lq_path" line per pair).

    layout: list_file
    params:
      list: RealBlur_J_train_list.txt     # relative to the source root
      columns: [gt, lq]                   # which column is which (default [gt, lq])
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from uir25m.sources.pairing import Pair, PartScan
from uir25m.sources.paths import FileIndex

REQUIRED = {"list"}
OPTIONAL = {"columns"}


def folders(params: dict[str, Any]) -> list[str]:
    """The listed pairs may lie anywhere: the whole tree."""
    return [""]


def marks(params: dict[str, Any]) -> list[str]:
    """What identifies the layout on disk: the list file."""
    return [params["list"]]

def scan(index: FileIndex, params: dict[str, Any]) -> PartScan:
    columns = params.get("columns", ["gt", "lq"])
    if sorted(columns) != ["gt", "lq"]:
        raise ValueError(f"list_file: columns must name gt and lq once each, got {columns}")
    scan = PartScan()
    listed = params["list"]
    if listed not in index:
        scan.notes.append(f"list file {listed} is missing")
        return scan
    scan.rejects.append((listed, "metadata", "a pairing list: read, not shipped"))
    text = (Path(index.root) / listed).read_text(encoding="utf-8", errors="replace")
    missing = 0
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            scan.notes.append(f"{listed}:{n}: expected two paths, got {line!r}")
            continue
        row = dict(zip(columns, fields[:2]))
        gt, lq = row["gt"].removeprefix("./"), row["lq"].removeprefix("./")
        if gt in index and lq in index:
            scan.pairs.append(Pair(lq, gt))
            scan.lq_files.add(lq)
            scan.gt_files.add(gt)
        else:
            missing += 1
            for path in (gt, lq):
                if path in index:  # its partner is listed but absent
                    scan.rejects.append((path, "missing_partner", f"{listed}:{n} lists a partner that does not exist"))
    if missing:
        scan.notes.append(f"{listed}: {missing} listed pair(s) with a file missing on disk")
    return scan
