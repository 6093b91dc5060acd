"""Where inputs come from: source manifests (`manifests/sources/<name>.yaml`), the layout
adapters that turn a downloaded dataset's folders into sorted pairs, and records of clean images.

Modules: paths (file index, globs, pairing rules), pairing (the shared LQ -> GT matcher), one
module per layout: parallel, nested, list_file, multi_type, clean, unpaired (no-reference test
images); discover (where each dataset was unpacked under a downloads folder); embedded (the
demo's images).

A manifest:

    name: gopro
    title: GoPro (GOPRO_Large)
    homepage: https://seungjunnah.github.io/Datasets/gopro
    licence: unknown
    redistribution: unknown             # yes | no | unknown
    citation: |
      @inproceedings{...}
    layout_verified: true
    evidence: where the layout was confirmed
    dirs: [GOPRO_Large, GoPro]          # folder names tried under the raw root, in order
    parts:
      - name: train
        type: mb                        # omit for clean-only parts (the recipe picks types)
        real: false
        partition: train
        variant: blur                   # default: the part's name
        layout: nested
        params: {glob: "train/*/blur/*.png", gt: {regex: "(.*)/blur/(.*)", replace: "\\1/sharp/\\2"}}
        expected: 2103                  # pairs (or clean images); or unknown
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from uir25m import manifest, packaged, taxonomy
from uir25m.sources import clean, list_file, multi_type, nested, parallel, unpaired
from uir25m.sources.pairing import Pair, PartScan
from uir25m.sources.paths import FileIndex, walk

LAYOUTS: dict[str, ModuleType] = {
    "parallel": parallel, "nested": nested, "list_file": list_file, "multi_type": multi_type, "clean": clean,
    "unpaired": unpaired,
}
REDISTRIBUTION = ("yes", "no", "unknown")
_SOURCE_KEYS = {"name", "title", "homepage", "licence", "citation", "redistribution", "layout_verified",
                "evidence", "dirs", "parts", "notes"}
_PART_KEYS = {"name", "type", "real", "partition", "variant", "layout", "params", "expected", "note"}

__all__ = ["CleanImage", "FileIndex", "LAYOUTS", "Pair", "Part", "PartScan", "SourceError", "SourceSpec",
           "find_root", "load", "names", "parse", "walk"]


class SourceError(ValueError):
    """A source manifest that does not validate."""


@dataclass(frozen=True)
class CleanImage:
    """A clean source file that synthetic types degrade (the demo's records)."""

    source: str  # source name (see manifest.check_source)
    root: str  # absolute path of the source root
    relpath: str  # POSIX path relative to the root
    partition: str  # train | test
    width: int
    height: int


@dataclass(frozen=True)
class Part:
    name: str
    type: str | None  # None: clean-only images
    real: bool
    partition: str
    variant: str
    layout: str
    params: dict[str, Any]
    expected: int | None
    note: str = ""

    @property
    def folders(self) -> list[str]:
        """The folders this part reads, relative to the source root ("" = the whole tree)."""
        return list(LAYOUTS[self.layout].folders(self.params))

    @property
    def marks(self) -> list[str]:
        """What shows on disk that this part's layout is there: the folders it reads (or its list
        file); empty when it reads only files at the top of the root."""
        adapter = LAYOUTS[self.layout]
        return list(adapter.marks(self.params)) if hasattr(adapter, "marks") else [f for f in self.folders if f]

    def scan(self, index: FileIndex) -> PartScan:
        try:
            return LAYOUTS[self.layout].scan(index, self.params)
        except OSError as e:  # a list file that cannot be read, ...
            out = PartScan()
            out.notes.append(f"part {self.name}: {type(e).__name__}: {e}")
            return out


@dataclass(frozen=True)
class SourceSpec:
    name: str
    title: str
    homepage: str
    licence: str
    citation: str
    redistribution: str
    layout_verified: bool
    evidence: str
    dirs: tuple[str, ...]
    parts: tuple[Part, ...]
    notes: str = ""

    def part(self, name: str) -> Part:
        for p in self.parts:
            if p.name == name:
                return p
        raise SourceError(f"source {self.name!r} has no part {name!r}; parts: {', '.join(p.name for p in self.parts)}")

    @property
    def folders(self) -> list[str]:
        """Every folder a part of this source reads ("" = the whole tree)."""
        return sorted({f for p in self.parts for f in p.folders})

    @property
    def types(self) -> tuple[str, ...]:
        found = {p.type for p in self.parts if p.type}
        return tuple(c for c in taxonomy.CODES if c in found)


def _part(data: dict[str, Any], where: str) -> Part:
    unknown = set(data) - _PART_KEYS
    if unknown:
        raise SourceError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_PART_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise SourceError(f"{where}: every part needs a name")
    code = data.get("type")
    if code is not None:
        try:
            taxonomy.get(code)
        except taxonomy.UnknownTypeError as e:
            raise SourceError(f"{where}: {e}") from None
    layout = data.get("layout")
    if layout not in LAYOUTS:
        raise SourceError(f"{where}: unknown layout {layout!r}; layouts: {', '.join(LAYOUTS)}")
    if (layout == "clean") != (code is None):
        raise SourceError(f"{where}: clean-only parts (layout clean) have no type; every other part needs one")
    params = data.get("params") or {}
    adapter = LAYOUTS[layout]
    missing, extra = adapter.REQUIRED - set(params), set(params) - adapter.REQUIRED - adapter.OPTIONAL
    if missing or extra:
        raise SourceError(f"{where}: layout {layout} needs params {sorted(adapter.REQUIRED)} "
                          f"(optional {sorted(adapter.OPTIONAL)}); missing {sorted(missing)}, unknown {sorted(extra)}")
    partition = data.get("partition")
    if partition not in manifest.PARTITIONS:
        raise SourceError(f"{where}: partition must be train or test, got {partition!r}")
    real = data.get("real", False)
    if not isinstance(real, bool):
        raise SourceError(f"{where}: real must be true or false")
    expected = data.get("expected", "unknown")
    if expected != "unknown" and (not isinstance(expected, int) or expected < 0):
        raise SourceError(f"{where}: expected must be a count or unknown")
    return Part(name, code, real, partition, str(data.get("variant", name)), layout, dict(params),
                None if expected == "unknown" else expected, str(data.get("note", "")))


def parse(data: dict[str, Any], where: str = "source") -> SourceSpec:
    """Validate a source manifest; every error names the file and the key."""
    unknown = set(data) - _SOURCE_KEYS
    if unknown:
        raise SourceError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_SOURCE_KEYS)}")
    for key in ("name", "title", "licence", "redistribution", "dirs", "parts"):
        if key not in data:
            raise SourceError(f"{where}: `{key}` is required")
    name = data["name"]
    try:
        manifest.check_source(name)
    except manifest.FormatError as e:
        raise SourceError(f"{where}: {e}") from None
    if data["redistribution"] not in REDISTRIBUTION:
        raise SourceError(f"{where}: redistribution must be one of {', '.join(REDISTRIBUTION)}")
    dirs = data["dirs"]
    if not isinstance(dirs, list) or not dirs or not all(isinstance(d, str) and d for d in dirs):
        raise SourceError(f"{where}: dirs must be a non-empty list of folder names")
    parts = tuple(_part(p, f"{where}: parts[{i}]") for i, p in enumerate(data["parts"] or []))
    if not parts:
        raise SourceError(f"{where}: a source needs at least one part")
    if len({p.name for p in parts}) != len(parts):
        raise SourceError(f"{where}: part names must be unique")
    return SourceSpec(
        name=name, title=str(data["title"]), homepage=str(data.get("homepage", "")), licence=str(data["licence"]),
        citation=str(data.get("citation", "")), redistribution=data["redistribution"],
        layout_verified=bool(data.get("layout_verified", False)), evidence=str(data.get("evidence", "")),
        dirs=tuple(dirs), parts=parts, notes=str(data.get("notes", "")),
    )


def names() -> tuple[str, ...]:
    """Every catalogued source."""
    return packaged.names("sources")


def load(name: str) -> SourceSpec:
    """A catalogued source by name."""
    spec = parse(packaged.load("sources", name), f"sources/{name}.yaml")
    if spec.name != name:
        raise SourceError(f"sources/{name}.yaml: name {spec.name!r} differs from the file name")
    return spec


def find_root(spec: SourceSpec, raw: str | os.PathLike | None, overrides: dict[str, str] | None = None) -> tuple[Path | None, list[Path]]:
    """The source's folder under `raw` (or its --source override), found as `discover.locate`
    finds it. Returns (found or None, the places looked at)."""
    from uir25m.sources import discover

    loc = discover.locate(spec, discover.Downloads.list(raw), overrides)
    if loc.ambiguous:
        raise discover.AmbiguousSource(f"{spec.name}: {loc.ambiguous}")
    return loc.root, [Path(p) for p in loc.looked] or [c.path for c in loc.candidates]
