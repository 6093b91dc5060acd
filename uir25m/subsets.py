"""Presets (`manifests/subsets/*.yaml`): selections of (type, source) pairs with repeat ratios, and
the repeat-sampling weights they give on a built dataset.

    name: 5d
    select:
      - {type: h, sources: [reside_ots], ratio: 1}
      - {type: gn, sources: [bsd400, wed], ratio: 15}
      - {type: s, sources: '*', ratio: 1}       # '*': every source of that type

Weight of a (type, source) stream = ratio x the number of *source pairs* it holds in the train
partition (tiles of one pair count once). Shares of draws follow the weights.
"""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from uir25m import manifest, packaged, taxonomy

ANY = "*"


class PresetError(ValueError):
    """A preset that does not validate."""


@dataclass(frozen=True)
class Selection:
    code: str
    sources: tuple[str, ...] | None  # None: any source
    ratio: float

    def matches(self, code: str, source: str) -> bool:
        return code == self.code and (self.sources is None or source in self.sources)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    select: tuple[Selection, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        """Selected codes in class-id order (a classifier masks its loss to these)."""
        chosen = {s.code for s in self.select}
        return tuple(c for c in taxonomy.CODES if c in chosen)

    def selection(self, code: str, source: str) -> Selection | None:
        for s in self.select:
            if s.matches(code, source):
                return s
        return None

    def with_ratios(self, ratios: Mapping[str, float]) -> "Preset":
        """A copy with some types' ratios replaced (e.g. from a training config)."""
        for code in ratios:
            if code not in self.codes:
                raise PresetError(f"preset {self.name!r} has no type {code!r} to re-weight; its types: {', '.join(self.codes)}")
        sel = tuple(Selection(s.code, s.sources, float(ratios.get(s.code, s.ratio))) for s in self.select)
        return Preset(self.name, self.description, sel)


def parse(data: Mapping[str, Any], where: str = "preset") -> Preset:
    """Validate a preset mapping; unknown codes are errors listing the valid ones."""
    unknown = set(data) - {"name", "description", "select"}
    if unknown:
        raise PresetError(f"{where}: unknown keys {sorted(unknown)}")
    entries = data.get("select")
    if not isinstance(entries, list) or not entries:
        raise PresetError(f"{where}: `select` must be a non-empty list")
    out, seen = [], set()
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping) or set(e) - {"type", "sources", "ratio"} or "type" not in e:
            raise PresetError(f"{where}: select[{i}]: expected {{type, sources, ratio}}, got {e!r}")
        try:
            code = taxonomy.get(e["type"]).code
        except taxonomy.UnknownTypeError as err:
            raise PresetError(f"{where}: select[{i}]: {err}") from None
        sources = e.get("sources", ANY)
        if sources == ANY:
            srcs = None
        elif isinstance(sources, list) and sources:
            srcs = tuple(manifest.check_source(s) for s in sources)
        else:
            raise PresetError(f"{where}: select[{i}]: sources must be '*' or a non-empty list")
        ratio = e.get("ratio", 1)
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or ratio <= 0:
            raise PresetError(f"{where}: select[{i}]: ratio must be a positive number")
        for s in srcs or (ANY,):
            if (code, s) in seen:
                raise PresetError(f"{where}: select[{i}]: ({code}, {s}) selected twice")
            seen.add((code, s))
        out.append(Selection(code, srcs, float(ratio)))
    return Preset(str(data.get("name", where)), str(data.get("description", "")), tuple(out))


def load(name: str) -> Preset:
    """A packaged preset by name (5d, 12d, single, mixed, all)."""
    return parse(packaged.load("subsets", name), f"subsets/{name}.yaml")


def from_codes(codes: str | list[str], ratio: float = 1.0) -> Preset:
    """An ad-hoc preset: these types, any source, one ratio (e.g. `--types gn,rs`)."""
    parsed = taxonomy.parse_codes(codes)
    return Preset("+".join(parsed), "types given on the command line", tuple(Selection(c, None, ratio) for c in parsed))


def names() -> tuple[str, ...]:
    return packaged.names("subsets")


def source_pair_counts(root: str | os.PathLike, partition: str = "train") -> dict[tuple[str, str], int]:
    """Source pairs per (type, source) in one partition: distinct (lq file, gt file, variant), so
    tiles of one pair count once (see manifest.source_pairs)."""
    return manifest.source_pairs(root, partition)


def weights(preset: Preset, counts: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], float]:
    """Repeat-sampling weight per selected (type, source) stream: ratio x source pairs."""
    out = {}
    for (code, source), n in sorted(counts.items()):
        sel = preset.selection(code, source)
        if sel is not None and n > 0:
            out[(code, source)] = sel.ratio * n
    return out


def shares(w: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """Effective share of draws per type."""
    total = sum(w.values())
    by_type: dict[str, float] = defaultdict(float)
    for (code, _), v in w.items():
        by_type[code] += v / total if total else 0.0
    return {c: by_type[c] for c in taxonomy.CODES if c in by_type}
