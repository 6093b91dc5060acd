"""Where each catalogued dataset was unpacked under a folder of downloads.

Archives unpack in many ways (`RESIDE/OTS_BETA/...`, Restormer's `Datasets/train/Rain13K/...`,
`DPDD/dd_dp_dataset_canon/...`), so a source is looked for below the downloads folder, not only at
its first level:

1. The folders are listed once, a bounded number of levels deep (`MAX_DEPTH`, plus two more for
   what lies below a match), within bounded time and count, following links, skipping loops and
   hidden folders.
2. Candidates are the folders named as in the source's `dirs` (any depth up to MAX_DEPTH, case
   ignored), the folders up to three levels above and two below each of them, and the downloads
   folder itself.
3. A candidate is accepted only when the layout is there: every folder (or list file) that one of
   the source's parts reads, relative to the candidate (`Part.marks`: Rain13K's
   `train/Rain13K/input`, DPDD's `train_c/source`). A named folder whose parts read only files at
   its top (no folder to look for) is accepted by its name, as before.
4. One accepted candidate is the root. Of several, each is scanned: those whose parts find no pair
   are passed over, and so are those with fewer of the source's parts there than the best (a
   folder of another layout that shares some of its sub-folders); two or more with as many parts
   that find pairs are two copies of one dataset, which is refused (`AmbiguousSource`): the user
   says which with `--source NAME=PATH`.
5. One folder is the root of one source: where two sources accept the same folder (PromptIR's
   3-task layout inside AdaIR's 5-task one), the source with the larger share of its parts there
   keeps it (then the one with more parts there); a tie is ambiguous.

Every decision is recorded (`Location.candidates`: how each candidate was found, and why it was
chosen or passed over) for `sources check` and the build report.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

MAX_DEPTH = 3  # levels below the downloads folder at which a source's folder name is looked for
BELOW = 2  # levels below a named folder at which its layout is looked for
ABOVE = 3  # levels above a named folder
MAX_FOLDERS = 50_000
MAX_SECONDS = 20.0


class AmbiguousSource(ValueError):
    """Two or more copies of one dataset under the downloads folder."""


@dataclass(frozen=True)
class Candidate:
    path: Path
    how: str  # how it was found: "named X", "above X", "below X", "the downloads folder", "--source"
    parts: tuple[str, ...] = ()  # the parts whose folders are there
    pairs: int | None = None  # pairs its parts find (scanned only when there are several)
    verdict: str = ""  # "chosen", or why it was passed over

    def row(self) -> dict[str, Any]:
        return {"path": str(self.path), "how": self.how, "parts": list(self.parts), "pairs": self.pairs,
                "verdict": self.verdict}


@dataclass
class Location:
    """Where one source is, and how that was decided."""

    source: str
    root: Path | None
    candidates: list[Candidate] = field(default_factory=list)
    ambiguous: str = ""  # why the source cannot be placed without --source ("" if it can)
    looked: list[str] = field(default_factory=list)  # what was looked for, when nothing was found

    @property
    def chosen(self) -> Candidate | None:
        return next((c for c in self.candidates if c.verdict == "chosen"), None)

    def passed_over(self) -> list[Candidate]:
        return [c for c in self.candidates if c.verdict not in ("chosen", "")]

    def describe(self) -> list[str]:
        """Lines for a report: where it was found and what was passed over."""
        out = []
        chosen = self.chosen
        if chosen is not None:
            out.append(f"found at {chosen.path} ({chosen.how})")
        for c in self.passed_over():
            out.append(f"passed over {c.path} ({c.how}): {c.verdict}")
        if self.ambiguous:
            out.append(f"ambiguous: {self.ambiguous}")
        return out


@dataclass
class Downloads:
    """The folders of a downloads folder, listed once, down to MAX_DEPTH + BELOW levels."""

    root: Path | None
    folders: list[str]  # relative POSIX paths, "" = the root, in listing order (shallow first)
    truncated: str = ""  # why the listing stopped early ("" if complete)

    @classmethod
    def list(cls, root: str | os.PathLike | None, *, max_depth: int = MAX_DEPTH + BELOW,
             max_folders: int = MAX_FOLDERS, max_seconds: float = MAX_SECONDS) -> "Downloads":
        if root is None:
            return cls(None, [])
        root = Path(root)
        if not root.is_dir():
            return cls(root, [])
        t0 = time.monotonic()
        out, truncated = [""], ""
        seen = {_ident(root)}
        level = [""]
        for depth in range(1, max_depth + 1):
            nxt = []
            for rel in level:
                try:
                    with os.scandir(root / rel if rel else root) as it:
                        names = sorted(e.name for e in it if not e.name.startswith(".") and _is_dir(e))
                except OSError:
                    continue
                for name in names:
                    child = f"{rel}/{name}" if rel else name
                    ident = _ident(root / child)
                    if ident is None or ident in seen:  # a link loop, or a folder reached twice
                        continue
                    seen.add(ident)
                    out.append(child)
                    nxt.append(child)
                    if len(out) >= max_folders:
                        truncated = f"stopped after {max_folders} folders"
                        break
                if truncated or time.monotonic() - t0 > max_seconds:
                    truncated = truncated or f"stopped after {max_seconds:g} s ({len(out)} folders)"
                    break
            if truncated:
                break
            level = nxt
        return cls(root, out, truncated)

    def below(self, rel: str, levels: int) -> list[str]:
        prefix = f"{rel}/" if rel else ""
        return [f for f in self.folders if f.startswith(prefix) and f != rel
                and f[len(prefix):].count("/") < levels]


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _named(rel: str, dirs: Iterable[str]) -> str | None:
    """The `dirs` entry that names this folder (its last components, case ignored), if any."""
    low = rel.casefold()
    for d in dirs:
        d = d.strip("/").casefold()
        if low == d or low.endswith("/" + d):
            return d
    return None


def _candidates(spec, downloads: Downloads) -> list[tuple[str, str]]:
    """(relative folder, how it was found), each folder once, named ones first."""
    out: dict[str, str] = {}
    named = [f for f in downloads.folders if f and f.count("/") < MAX_DEPTH and _named(f, spec.dirs)]
    for rel in named:
        out.setdefault(rel, f"named {PurePosixPath(rel).name}")
    for rel in named:
        parent = rel
        for _ in range(ABOVE):
            if not parent:
                break
            parent = str(PurePosixPath(parent).parent) if "/" in parent else ""
            out.setdefault(parent, f"above {rel}" if parent else "the downloads folder")
        for child in downloads.below(rel, BELOW):
            out.setdefault(child, f"below {rel}")
    out.setdefault("", "the downloads folder")
    return list(out.items())


def _present(spec, folder: Path) -> tuple[str, ...]:
    """The parts whose marks (folders or list files) all exist under `folder`."""
    return tuple(p.name for p in spec.parts if p.marks and all((folder / m).exists() for m in p.marks))


def _pairs(spec, folder: Path) -> int:
    """Pairs the source's parts find under `folder` (only the folders they read are indexed)."""
    from uir25m.sources.paths import walk

    reads = sorted({f for p in spec.parts for f in p.folders})
    total = 0
    index = walk(folder, follow=reads)
    for p in spec.parts:
        total += len(p.scan(index).pairs)
    return total


def locate(spec, downloads: Downloads, overrides: Mapping[str, str] | None = None) -> Location:
    """Where `spec`'s dataset is under the downloads folder (see the module docstring)."""
    if overrides and spec.name in overrides:
        path = Path(overrides[spec.name])
        found = path.is_dir()
        cand = Candidate(path, "--source", verdict="chosen" if found else "not a folder")
        return Location(spec.name, path if found else None, [cand], looked=[] if found else [str(path)])
    if downloads.root is None:
        return Location(spec.name, None, looked=["(no --root given)"])
    top_only = [p.name for p in spec.parts if not p.marks]
    accepted, passed = [], []
    for rel, how in _candidates(spec, downloads):
        folder = downloads.root / rel if rel else downloads.root
        parts = _present(spec, folder)
        if parts or (top_only and how.startswith("named")):
            accepted.append(Candidate(folder, how, parts or tuple(top_only)))
        elif how.startswith("named"):
            marks = sorted({m for p in spec.parts for m in p.marks})
            shown = ", ".join(marks[:4]) + (", ..." if len(marks) > 4 else "")
            passed.append(Candidate(folder, how, verdict=f"none of its parts' folders are there ({shown})"))
    looked = [str(downloads.root / d) for d in spec.dirs]
    if not accepted:
        return Location(spec.name, None, passed, looked=looked)
    if len(accepted) > 1:
        accepted = _dedupe(accepted, passed)
    if len(accepted) == 1:
        return Location(spec.name, accepted[0].path, [_set(accepted[0], "chosen"), *passed])
    scanned = _nested_once([Candidate(c.path, c.how, c.parts, _pairs(spec, c.path)) for c in accepted], passed)
    with_pairs = sorted((c for c in scanned if c.pairs), key=lambda c: -len(c.parts))
    empty = [_set(c, "its parts find no pairs there") for c in scanned if not c.pairs]
    best = with_pairs[0] if with_pairs else scanned[0]
    copies = [c for c in with_pairs if len(c.parts) == len(best.parts)]
    if len(copies) > 1:
        places = "; ".join(f"{c.path} ({c.pairs} pairs)" for c in copies)
        why = (f"{len(copies)} copies of {spec.name} under {downloads.root}: {places}. "
               f"Say which to use with --source {spec.name}=PATH")
        rest = [_set(c, "another copy") for c in copies]
        return Location(spec.name, None, rest + _fewer(with_pairs[len(copies):], spec) + empty + passed, ambiguous=why)
    rest = [c for c in empty if c.path != best.path]
    return Location(spec.name, best.path, [_set(best, "chosen"), *_fewer(with_pairs[1:], spec), *rest, *passed])


def _fewer(cands: list[Candidate], spec) -> list[Candidate]:
    n = len(spec.parts)
    return [_set(c, f"fewer of its parts there ({len(c.parts)} of {n}: {', '.join(c.parts)})") for c in cands]


def _set(c: Candidate, verdict: str) -> Candidate:
    return Candidate(c.path, c.how, c.parts, c.pairs, verdict)


def _nested_once(scanned: list[Candidate], passed: list[Candidate]) -> list[Candidate]:
    """A candidate inside another that finds the same pairs is the same copy seen twice (globs
    that accept any leading folders): keep the outer one."""
    out = []
    for c in scanned:
        outer = next((o for o in scanned if o is not c and o.pairs == c.pairs and c.path.is_relative_to(o.path)), None)
        if outer is not None:
            passed.append(_set(c, f"inside {outer.path}, whose parts find the same pairs"))
        else:
            out.append(c)
    return out


def _dedupe(accepted: list[Candidate], passed: list[Candidate]) -> list[Candidate]:
    """One candidate per real folder (a link and its target are one copy)."""
    out, seen = [], {}
    for c in accepted:
        ident = _ident(c.path)
        if ident in seen:
            passed.append(_set(c, f"the same folder as {seen[ident]}"))
            continue
        seen[ident] = c.path
        out.append(c)
    return out


def locate_all(specs: Iterable, downloads: Downloads, overrides: Mapping[str, str] | None = None) -> dict[str, Location]:
    """Every source's location, one source per folder (see the module docstring, rule 5)."""
    specs = list(specs)
    found = {s.name: locate(s, downloads, overrides) for s in specs}
    by_folder: dict[tuple, list[str]] = {}
    for name, loc in found.items():
        if loc.root is not None and not (overrides and name in overrides):
            by_folder.setdefault(_ident(loc.root) or (str(loc.root),), []).append(name)
    by_name = {s.name: s for s in specs}
    for names in by_folder.values():
        if len(names) < 2:
            continue
        scores = {n: _score(by_name[n], found[n].chosen) for n in names}
        ranked = sorted(names, key=lambda n: scores[n], reverse=True)
        top = ranked[0]
        if scores[top] == scores[ranked[1]]:
            tied = [n for n in ranked if scores[n] == scores[top]]
            for n in tied:
                found[n].ambiguous = (f"{found[n].root} holds the layouts of {', '.join(tied)} alike; say which it is "
                                      f"with --source {n}=PATH")
                found[n].root = None
            continue
        for n in ranked[1:]:
            loc = found[n]
            loc.candidates = [_set(c, f"the folder is {top}'s, which has more of its parts there")
                              if c.verdict == "chosen" else c for c in loc.candidates]
            loc.root = None
    return found


def _score(spec, chosen: Candidate | None) -> tuple[float, int]:
    n = len(chosen.parts) if chosen else 0
    return (n / max(1, len(spec.parts)), n)
