"""Paths under a source root: one walk into a sorted index, glob matching on relative POSIX paths
(`**` = any number of folders), and pairing rules (a regex over the path and its replacement)."""
from __future__ import annotations

import bisect
import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


@dataclass
class FileIndex:
    """Every file under a source root (relative POSIX paths, sorted), plus what could not be read."""

    root: Path
    files: list[str]
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (relpath, detail): folders, bad names, links
    not_followed: list[tuple[str, str]] = field(default_factory=list)  # (relpath, detail): linked folders left out
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


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _on_path(rel: str, folders: Iterable[str]) -> bool:
    """Whether `rel` is one of `folders`, inside one, or on the way to one ("" = everything)."""
    for f in folders:
        if not f or rel == f or rel.startswith(f + "/") or f.startswith(rel + "/"):
            return True
    return False


def walk(root: str | os.PathLike, *, skip: Iterable[str] = (), follow: Iterable[str] | None = None) -> FileIndex:
    """Index every regular file under `root` (following links to files, and to folders people link
    in from other disks); whatever cannot be used is recorded, never skipped silently and never
    raised: unreadable folders, undecodable names, dangling links, link loops, FIFOs, sockets and
    devices (never opened) go to `unreadable`.

    `skip`: folders (relative) not to enter, e.g. another source's root inside this one.
    `follow`: the folders the source's parts read (see `part_folders`; "" = all); a linked folder
    elsewhere is not entered and is recorded in `not_followed` (None: follow every link).
    """
    root = Path(root)
    files: list[str] = []
    unreadable: list[tuple[str, str]] = []
    not_followed: list[tuple[str, str]] = []
    skip = {s.strip("/") for s in skip}
    follow = None if follow is None else [f.strip("/") for f in follow]
    try:
        top = os.stat(root)
        seen = {(top.st_dev, top.st_ino)}
    except OSError as e:
        return FileIndex(root, [], [(".", f"{type(e).__name__}: {e.strerror or e}")])
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            unreadable.append((rel_dir or ".", f"{type(e).__name__}: {e.strerror or e}"))
            continue
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                unreadable.append((rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                                   "the file name is not valid UTF-8"))
                continue
            is_link = False
            try:
                is_link = entry.is_symlink()
                st = entry.stat(follow_symlinks=True)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    unreadable.append((rel, "a symbolic link loop"))
                elif is_link and e.errno == errno.ENOENT:
                    unreadable.append((rel, "a dangling symbolic link (its target does not exist)"))
                else:
                    unreadable.append((rel, f"{type(e).__name__}: {e.strerror or e}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if rel in skip:
                    continue
                if is_link and follow is not None and not _on_path(rel, follow):
                    not_followed.append((rel, "a linked folder that no part of this source reads (not followed)"))
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    unreadable.append((rel, "a symbolic link loop (a folder already indexed)"))
                    continue
                seen.add(ident)
                subdirs.append(rel)
            elif stat.S_ISREG(st.st_mode):
                files.append(rel)
            else:
                unreadable.append((rel, f"{_kind(st.st_mode)}, not a regular file (never opened)"))
        stack.extend(reversed(subdirs))
    files.sort()
    return FileIndex(root, files, sorted(unreadable), sorted(not_followed))


def glob_folders(pattern: str) -> list[str]:
    """The folder a glob reads beneath ("" = the whole tree), or [] when it matches files at the
    top only."""
    return [_fixed_prefix(pattern)] if "/" in pattern else []


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
