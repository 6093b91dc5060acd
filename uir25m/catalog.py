"""The source catalogue for users: list every catalogued dataset (types, licence, whether it may
be redistributed, whether its layout was verified) and check which are present under a folder of
downloads, part by part, with pairs found against pairs expected and unpaired files."""
from __future__ import annotations

import os
from typing import Any

from uir25m import sources
from uir25m.sources import discover


def listing() -> list[dict[str, Any]]:
    """One row per catalogued source."""
    rows = []
    for name in sources.names():
        s = sources.load(name)
        rows.append({
            "name": s.name, "title": s.title, "types": list(s.types) or ["clean"], "licence": s.licence,
            "redistribution": s.redistribution, "layout_verified": s.layout_verified, "homepage": s.homepage,
            "parts": [{"part": p.name, "type": p.type or "clean", "real": p.real, "partition": p.partition,
                       "expected": p.expected} for p in s.parts],
        })
    return rows


def check(raw: str | os.PathLike | None, source_dirs: dict[str, str] | None = None) -> dict[str, Any]:
    """Which catalogued sources are present under `raw`, where each was found (and which folders
    were passed over, and why), and what their parts hold; two copies of one are `ambiguous`."""
    present, absent, ambiguous = [], [], []
    specs = [sources.load(name) for name in sources.names()]
    downloads = discover.Downloads.list(raw)
    located = discover.locate_all(specs, downloads, source_dirs)
    for spec in specs:
        loc = located[spec.name]
        passed = [c.row() for c in loc.passed_over()]
        if loc.ambiguous:
            ambiguous.append({"source": spec.name, "why": loc.ambiguous, "candidates": passed})
            continue
        if loc.root is None:
            absent.append({"source": spec.name, "looked": loc.looked, "passed_over": passed})
            continue
        root = loc.root
        inner = [o.root.relative_to(root).as_posix() for o in located.values()
                 if o.root is not None and o.root != root and o.root.is_relative_to(root)]
        index = sources.walk(root, skip=inner, follow=spec.folders)
        parts, gt_files, used_gt = [], set(), set()
        for part in spec.parts:
            scan = part.scan(index)
            gt_files |= scan.gt_files
            used_gt |= {p.gt for p in scan.pairs}
            found = len(scan.pairs)
            unpaired = sum(1 for _, reason, _ in scan.rejects if reason == "missing_partner")
            status = ("empty" if found == 0 else "ok" if part.expected in (None, found)
                      else "fewer" if found < part.expected else "more")
            parts.append({"part": part.name, "type": part.type or "clean", "found": found, "expected": part.expected,
                          "unpaired_lq": unpaired, "status": status, "notes": scan.notes})
        present.append({
            "source": spec.name, "root": str(root), "how": loc.chosen.how if loc.chosen else "",
            "files": len(index.files), "unreadable": len(index.unreadable), "unpaired_gt": len(gt_files - used_gt),
            "parts": parts, "passed_over": passed,
        })
    return {"raw": None if raw is None else str(raw), "present": present, "absent": absent, "ambiguous": ambiguous,
            "listing": downloads.truncated or "complete"}


def format_listing(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'name':<16} {'types':<22} {'licence':<28} {'redistribute':<12} {'layout':<10}"]
    for r in rows:
        lic = r["licence"] if len(r["licence"]) <= 28 else r["licence"][:25] + "..."
        lines.append(f"{r['name']:<16} {','.join(r['types']):<22} {lic:<28} {r['redistribution']:<12} "
                     f"{'verified' if r['layout_verified'] else 'UNVERIFIED':<10}")
    lines.append(f"{len(rows)} sources; layouts verified: {sum(r['layout_verified'] for r in rows)}; "
                 f"redistributable: {sum(r['redistribution'] == 'yes' for r in rows)}")
    return "\n".join(lines)


def format_check(c: dict[str, Any]) -> str:
    lines = []
    for s in c["present"]:
        extra = f", {s['unreadable']} unreadable" if s["unreadable"] else ""
        lines.append(f"{s['source']}: {s['root']} ({s['how']}; {s['files']} files{extra}, {s['unpaired_gt']} GT without LQ)")
        lines += [f"  passed over {p['path']} ({p['how']}): {p['verdict']}" for p in s["passed_over"]]
        for p in s["parts"]:
            exp = "?" if p["expected"] is None else p["expected"]
            flag = "" if p["status"] == "ok" else f"  <- {p['status']}"
            unp = f", {p['unpaired_lq']} LQ without GT" if p["unpaired_lq"] else ""
            lines.append(f"  {p['part']:<16} {p['type']:<9} {p['found']:>8} / {exp} pairs{unp}{flag}")
            lines += [f"    note: {n}" for n in p["notes"]]
    for a in c["ambiguous"]:
        lines.append(f"AMBIGUOUS {a['source']}: {a['why']}")
    for a in c["absent"]:
        lines += [f"{a['source']}: passed over {p['path']} ({p['how']}): {p['verdict']}" for p in a["passed_over"]]
    if c.get("listing", "complete") != "complete":
        lines.append(f"note: the folder listing {c['listing']}; pass --source NAME=PATH for what lies deeper")
    lines.append(f"present: {len(c['present'])}; absent: {len(c['absent'])} "
                 f"({', '.join(a['source'] for a in c['absent'])})"
                 + (f"; ambiguous: {', '.join(a['source'] for a in c['ambiguous'])}" if c["ambiguous"] else ""))
    return "\n".join(lines)
