"""Plan a build from a recipe and the folder of downloaded datasets: find each source, pair its
files with the layout adapters, turn pairs and clean images into items, drop duplicate pairs,
and account for every file under every source root (shipped, or rejected with a reason)."""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uir25m import atomic, recipes, sources
from uir25m.build import BuildPlan
from uir25m.shards import Item, chunk_stream, clean_tasks, mark_shared_gts
from uir25m.sources import FileIndex, SourceSpec, discover, walk


@dataclass(frozen=True)
class BuildSettings:
    recipe: str  # a packaged recipe name or a YAML path
    raw: str | None  # the folder holding the downloaded datasets
    seed: int = 0
    tile: int | None = None  # overrides the recipe's tile
    shard_size: int | None = None  # overrides the recipe's shard_size
    source_dirs: dict[str, str] = field(default_factory=dict)  # name -> folder, overriding the search
    online: bool = False  # synthetic types as online samples over stored clean images (format 1.2)

    def __post_init__(self) -> None:
        if self.tile is not None and (self.tile < 0 or 0 < self.tile < 16):
            raise ValueError("--tile must be 0 (whole images) or >= 16")
        if self.shard_size is not None and self.shard_size < 1:
            raise ValueError("--shard-size must be >= 1")


@dataclass
class PlanReport:
    """What the planner found, for the user: per source and part, pairs found vs expected."""

    recipe: str
    present: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0

    def lines(self) -> list[str]:
        out = []
        for s in self.present:
            out.append(f"{s['source']}: {s['root']} ({s.get('how', 'found')})")
            out += [f"  {line}" for line in s.get("passed", [])]
            for p in s["parts"]:
                exp = "" if p["expected"] is None else f" (expected {p['expected']})"
                out.append(f"  {p['part']:<16} {p['type'] or 'clean':<9} {p['found']:>8} found{exp}")
                out += [f"    note: {n}" for n in p["notes"]]
        for m in self.missing:
            out.append(f"missing: {m['source']} (looked for {', '.join(m['looked'])})")
            out += [f"  {line}" for line in m.get("passed", [])]
        if self.duplicates:
            out.append(f"duplicate pairs dropped: {self.duplicates}")
        return out


def _reject(source: str, path: str, reason: str, detail: str, code: str = "") -> dict[str, str]:
    return {"source": source, "path": path, "reason": reason, "detail": detail, "stage": "plan", "type": code}


def plan(settings: BuildSettings) -> tuple[BuildPlan, PlanReport]:
    """The fixed task list of a build, and a report of what was found and what is missing."""
    recipe = recipes.load(settings.recipe)
    if not recipe.sources:
        raise ValueError(f"recipe {recipe.name!r} lists no sources (is it the demo? use `uir-build demo`)")
    tile = recipe.tile if settings.tile is None else settings.tile
    report = PlanReport(recipe.name)
    items_by_stream: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    roots: dict[str, str] = {}
    inputs: list[tuple[str, str, int, int]] = []
    rejects: list[dict[str, str]] = []
    sizes: dict[tuple[str, str], int] = {}
    located = locate(settings.raw, settings.source_dirs, [e.source for e in recipe.sources])
    for entry in recipe.sources:
        spec = sources.load(entry.source)
        loc = located[spec.name]
        root = loc.root
        if root is None:
            report.missing.append({"source": spec.name, "looked": loc.looked or ["(no --root given)"],
                                   "passed": [f"passed over {c.path} ({c.how}): {c.verdict}" for c in loc.passed_over()]})
            continue
        index = walk(root, skip=_inner_roots(root, located), follow=spec.folders)
        roots[spec.name] = str(root.resolve())
        for rel in index.files:
            st = os.stat(root / rel)
            inputs.append((spec.name, rel, st.st_size, st.st_mtime_ns))
            sizes[(spec.name, rel)] = st.st_size
        inputs += [(spec.name, rel, 0, 0) for rel, _ in index.unreadable + index.not_followed]
        items, part_rows, source_rejects = _source_items(spec, entry, recipe, index, tile)
        report.present.append({"source": spec.name, "root": str(root), "parts": part_rows, "how": loc.chosen.how,
                               "passed": [f"passed over {c.path} ({c.how}): {c.verdict}" for c in loc.passed_over()]})
        rejects += source_rejects
        for it in items:
            items_by_stream[(it.partition, it.code, it.source)].append(it)
    if not items_by_stream:
        missing = ", ".join(m["source"] for m in report.missing) or "none"
        raise FileNotFoundError(f"recipe {recipe.name!r}: nothing to build under {settings.raw} (missing sources: {missing})")
    dropped = _drop_duplicates(items_by_stream, roots, sizes)
    report.duplicates = len(dropped)
    rejects += _duplicate_rejects(dropped, items_by_stream)
    shard_size = settings.shard_size or recipe.shard_size
    tasks = []
    for (partition, code, source), items in sorted(items_by_stream.items()):
        if items:
            tasks += chunk_stream(items, partition=partition, code=code, source=source, root=roots[source], shard_size=shard_size)
    tasks = mark_shared_gts(tasks)
    if settings.online:
        tasks += clean_tasks(tasks, shard_size)
    resolved = recipe.resolved()
    plan_ = BuildPlan(
        name=recipe.name, seed=settings.seed, tasks=tuple(sorted(tasks, key=lambda t: t.shard)),
        inputs=tuple(sorted(inputs)), recipe=resolved,
        settings={"seed": settings.seed, "tile": tile, "shard_size": shard_size},
        locations={"raw": settings.raw, "source_dirs": dict(settings.source_dirs), "roots": roots},
        png_level=recipe.png_level,
        overrides={c: dict(r.params) for c, r in recipe.synthetic.items() if r.params},
        plan_rejects=tuple(sorted(rejects, key=lambda r: (r["source"], r["path"], r["reason"]))),
        online=settings.online,
    )
    return plan_, report


def locate(raw: str | None, source_dirs: dict[str, str], wanted: list[str]) -> dict[str, discover.Location]:
    """Where every catalogued source is under `raw` (one source per folder, see discover); raises
    AmbiguousSource naming each wanted source that has two copies there."""
    downloads = discover.Downloads.list(raw)
    located = discover.locate_all([sources.load(n) for n in sources.names()], downloads, source_dirs)
    unclear = [located[n].ambiguous for n in dict.fromkeys(wanted) if located[n].ambiguous]
    if unclear:
        raise discover.AmbiguousSource("\n".join(unclear))
    return located


def _inner_roots(root: Path, located: dict[str, discover.Location]) -> list[str]:
    """Other sources' folders inside `root`: their files are theirs, not this source's."""
    out = []
    for loc in located.values():
        if loc.root is not None and loc.root != root and loc.root.is_relative_to(root):
            out.append(loc.root.relative_to(root).as_posix())
    return out


def _source_items(spec: SourceSpec, entry: recipes.SourceEntry, recipe: recipes.Recipe, index: FileIndex,
                  tile: int) -> tuple[list[Item], list[dict[str, Any]], list[dict[str, str]]]:
    """Items of the selected parts, a report row per part, and the source's plan-time rejects:
    unpaired files, unreadable folders and names, and every file the recipe does not use."""
    scans = {p.name: p.scan(index) for p in spec.parts}
    items: list[Item] = []
    seen: set[tuple] = set()
    rejects = [_reject(spec.name, rel, "unreadable", detail) for rel, detail in index.unreadable]
    rejects += [_reject(spec.name, rel, "excluded_by_recipe", detail) for rel, detail in index.not_followed]
    rejected = {rel for rel, _ in index.unreadable} | {rel for rel, _ in index.not_followed}
    rows = []
    for name in entry.parts:
        part, scan = spec.part(name), scans[name]
        for rel, reason, detail in scan.rejects:
            if rel not in rejected:
                rejects.append(_reject(spec.name, rel, reason, detail, part.type or ""))
                rejected.add(rel)
        for pr in scan.pairs:
            variant = pr.variant or part.variant
            if part.type is not None:
                new = [Item(part.type, spec.name, part.partition, variant, "", part.real, pr.gt, pr.lq, tile_size=tile)]
            else:
                new = []
                for code in entry.synthesise:
                    t = recipe.synthetic[code]
                    for v in range(t.variants):
                        level = t.level_for(v, f"{spec.name}|{pr.gt}|{code}")
                        new.append(Item(code, spec.name, part.partition, f"v{v}", level, False, pr.gt, tile_size=tile))
            for it in new:
                if it.identity not in seen:  # two selected parts may list the same pair
                    seen.add(it.identity)
                    items.append(it)
        rows.append({"part": name, "type": part.type, "found": len(scan.pairs), "expected": part.expected,
                     "notes": scan.notes})
    used = {it.gt for it in items} | {it.lq for it in items if it.lq}
    selected_gt = set().union(*(scans[n].gt_files for n in entry.parts))
    owner_of: dict[str, str] = {}  # file -> the first unselected part that covers it
    for n, s in scans.items():
        if n not in entry.parts:
            for rel in s.files:
                owner_of.setdefault(rel, n)
    for rel in index.files:
        if rel in used or rel in rejected:
            continue
        owner = owner_of.get(rel)
        if rel in selected_gt and owner is None:
            rejects.append(_reject(spec.name, rel, "missing_partner", "no LQ of the selected parts pairs with this GT"))
        elif owner is not None:
            rejects.append(_reject(spec.name, rel, "excluded_by_recipe", f"in part {owner}, which the recipe does not select"))
        else:
            rejects.append(_reject(spec.name, rel, "excluded_by_recipe", "not in any part of this source"))
    return items, rows, rejects


def _blake2b_128():
    return hashlib.blake2b(digest_size=16)


def _drop_duplicates(streams: dict[tuple, list[Item]], roots: dict[str, str], sizes: dict) -> list[tuple[Item, Item]]:
    """Remove captured pairs whose LQ and GT files are byte-identical to an earlier pair of the
    same type (files are hashed only when their sizes collide). Returns (dropped, kept) pairs."""
    by_size: dict[tuple, list[Item]] = defaultdict(list)
    for items in streams.values():
        for it in items:
            if it.lq:
                by_size[(it.code, sizes.get((it.source, it.lq)), sizes.get((it.source, it.gt)))].append(it)
    dropped: list[tuple[Item, Item]] = []
    hashes: dict[tuple[str, str], str] = {}

    def digest(source: str, rel: str) -> str:
        if (source, rel) not in hashes:
            hashes[(source, rel)] = atomic.hash_file(Path(roots[source]) / rel, _blake2b_128)[0]
        return hashes[(source, rel)]

    for group in by_size.values():
        if len(group) < 2:
            continue
        first: dict[tuple[str, str], Item] = {}
        for it in sorted(group, key=lambda i: (i.source, i.partition != "train", i.lq, i.gt)):
            try:
                ident = (digest(it.source, it.lq), digest(it.source, it.gt))
            except OSError:
                continue  # unreadable: the worker will reject it with the reason
            if ident in first:
                dropped.append((it, first[ident]))
            else:
                first[ident] = it
    gone = {id(d) for d, _ in dropped}
    for key in streams:
        streams[key] = [it for it in streams[key] if id(it) not in gone]
    return dropped


def _duplicate_rejects(dropped: list[tuple[Item, Item]], streams: dict[tuple, list[Item]]) -> list[dict[str, str]]:
    used = {(it.source, p) for items in streams.values() for it in items for p in (it.lq, it.gt) if p}
    rows = []
    for dup, kept in dropped:
        for p in (dup.lq, dup.gt):
            if (dup.source, p) not in used:
                rows.append(_reject(dup.source, p, "duplicate_pair",
                                    f"same LQ and GT bytes as {kept.source}:{kept.lq} -> {kept.gt}", dup.code))
                used.add((dup.source, p))
    return rows
