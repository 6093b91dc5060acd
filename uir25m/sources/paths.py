"""Paths under a source root: one walk into a sorted index, glob matching on relative POSIX paths
(`**` = any number of folders), and pairing rules (a regex over the path and its replacement)."""
from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


@dataclass
class FileIndex:
    """Every file under a source root (relative POSIX paths, sorted), plus what could not be read."""

    root: Path
    files: list[str]
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (relpath, detail): folders, bad names
    _set: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        self._set = frozenset(self.files)

    def __contains__(self, relpath: str) -> bool:
        return relpath in self._set

    def under(self, folder: str) -> list[str]:
        """Files below `folder` ("" = all), in order."""
        if not folder:
            return list(self.files)
        prefix = folder.rstrip("/") + "/"
        lo = bisect.bisect_left(self.files, prefix)
        hi = bisect.bisect_left(self.files, prefix[:-1] + chr(ord("/") + 1))
        return self.files[lo:hi]

    def glob(self, pattern: str) -> list[str]:
        """Files matching a glob relative to the root, in order."""
        rx = glob_regex(pattern)
        return [f for f in self.under(_fixed_prefix(pattern)) if rx.fullmatch(f)]


def walk(root: str | os.PathLike) -> FileIndex:
    """Index every file under `root`; unreadable folders and undecodable names are recorded, not
    skipped silently."""
    root = Path(root)
    files: list[str] = []
    unreadable: list[tuple[str, str]] = []

    def onerror(err: OSError) -> None:
        rel = os.path.relpath(err.filename, root) if err.filename else "."
        unreadable.append((Path(rel).as_posix(), f"{type(err).__name__}: {err.strerror or err}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=True):
        dirnames.sort()
        rel_dir = Path(os.path.relpath(dirpath, root)).as_posix()
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                unreadable.append((rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                                   "the file name is not valid UTF-8"))
                continue
            files.append(rel)
    files.sort()
    return FileIndex(root, files, sorted(unreadable))


def _fixed_prefix(pattern: str) -> str:
    """The leading folders of a glob that hold no wildcard (where matches can start)."""
    parts = []
    for part in pattern.split("/")[:-1]:
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return "/".join(parts)


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern:
    """A compiled regex for a glob over relative POSIX paths: `*` and `?` stay inside one folder,
    `**/` spans any number of folders (none included), `[...]` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise ValueError(f"unclosed [ in glob {pattern!r}")
            body = pattern[i + 1:j]
            out.append("[^" + re.escape(body[1:]) + "]" if body.startswith("!") else "[" + re.escape(body) + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class Rule:
    """`regex` (matched against the whole path) and its `replace` template (`\\1`, `\\g<name>`)."""

    regex: str
    replace: str

    def apply(self, path: str) -> str | None:
        m = re.fullmatch(self.regex, path)
        return m.expand(self.replace) if m else None


def rules(spec) -> list[Rule]:
    """Parse a rule or a list of rules from a manifest (`{regex, replace}`)."""
    items = spec if isinstance(spec, list) else [spec]
    out = []
    for r in items:
        if not isinstance(r, dict) or set(r) != {"regex", "replace"}:
            raise ValueError(f"a pairing rule is {{regex, replace}}, got {r!r}")
        re.compile(r["regex"])
        out.append(Rule(r["regex"], r["replace"]))
    return out
