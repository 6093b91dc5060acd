"""A node's cache of whole shards fetched from a remote dataset (`s3://`, `hf://`).

A remote shard is fetched with one request into the cache folder (to a temporary name, checked
against shards.parquet's size and sha256, renamed into place; a shard that fails the check is
fetched once more, then reported), and its samples are then read from the local file by offset.
The workers and ranks of one node share the folder:

- a fetch holds an exclusive lock on the shard's lock file, so one process fetches it and the
  others wait for it;
- a process reading a shard holds its file open with a shared lock (a *lease*), per stream the
  `keep` shards it read last (a walk's window: a new window's shards end the old one's leases);
  eviction, least recently used first, only removes files it can lock exclusively, so never one in
  use;
- the cache stays within `limit` bytes: before a fetch, unleased shards are evicted until the new
  one fits (if every shard is leased the fetch goes ahead and a warning says so).

Readers tell the cache which shards they will need next (`prefetch`): a background thread
fetches them, so a reader rarely waits for the network.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger("uir.data")


def default_dir() -> Path:
    """The user's cache directory for fetched shards ($XDG_CACHE_HOME/uir25m/shards)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "uir25m" / "shards"


class ShardCache:
    """Whole shards of one remote dataset (at one revision) in a local folder; see the module."""

    def __init__(self, folder: str | os.PathLike, limit: int, fetch: Callable[[str, Path], None],
                 expected: Mapping[str, tuple[int, str]], *, keep: int = 2):
        self.folder, self.limit = Path(folder), int(limit)
        self.fetch, self.expected = fetch, dict(expected)  # rel -> (bytes, sha256)
        self.keep = keep  # leases held per group (a stream's walk window)
        self.fetches = 0  # shards this process fetched
        self._open: dict[str, OrderedDict[str, tuple[int, int]]] = {}  # group -> rel -> (descriptor, size)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._queued: set[str] = set()
        self._failed: dict[str, tuple[float, str]] = {}  # rel -> (when, why): a failed fetch is not retried at once

    FAILED_TTL = 60.0  # seconds a shard whose fetch failed (after its retries) fails again without a request

    def __getstate__(self) -> dict:  # leases, threads and locks stay in the process that made them
        state = dict(self.__dict__)
        state.update(_open={}, _lock=None, _pool=None, _queued=set(), fetches=0, _failed={})
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # --- reading ---------------------------------------------------------------------------------

    def open(self, rel: str, group: str = "") -> tuple[int, int]:
        """(descriptor, size) of the cached shard `rel`, fetched first if it is not there; it stays
        leased while this process keeps the descriptor: the `keep` shards of `group` opened last."""
        with self._lock:
            leases = self._open.setdefault(group, OrderedDict())
            hit = leases.get(rel)
            if hit is not None:
                leases.move_to_end(rel)
                return hit
        failed = self._failed.get(rel)
        if failed is not None and time.monotonic() - failed[0] < self.FAILED_TTL:
            raise OSError(failed[1])
        for _ in range(3):  # a shard evicted between the fetch and the open is fetched again
            try:
                path = self._ensure(rel)
            except OSError as e:
                self._failed[rel] = (time.monotonic(), str(e))
                raise
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            fcntl.flock(fd, fcntl.LOCK_SH)
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used
            entry = (fd, os.fstat(fd).st_size)
            with self._lock:
                leases[rel] = entry
                while len(leases) > self.keep:
                    _, (old, _) = leases.popitem(last=False)
                    os.close(old)
            return entry
        raise OSError(f"{rel}: evicted from the shard cache {self.folder} as soon as it was fetched (cache_limit too small?)")

    def release_all(self) -> None:
        with self._lock:
            for leases in self._open.values():
                for fd, _ in leases.values():
                    os.close(fd)
            self._open.clear()

    def prefetch(self, rels: Iterable[str]) -> None:
        """Fetch these shards in the background (each at most once queued at a time)."""
        todo = [r for r in rels if r not in self._queued and not (self.folder / r).is_file()]
        if not todo:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="uir-prefetch")
        for rel in todo:
            self._queued.add(rel)
            self._pool.submit(self._prefetch_one, rel)

    def _prefetch_one(self, rel: str) -> None:
        try:
            self._ensure(rel)
        except OSError as e:  # the reader that needs it will meet (and count) the error itself
            log.warning("prefetch of %s failed: %s", rel, e)
        finally:
            self._queued.discard(rel)

    # --- fetching ---------------------------------------------------------------------------------

    def _ensure(self, rel: str) -> Path:
        """The shard's path in the cache, fetched and verified first if absent (one process fetches,
        the others wait on its lock)."""
        path = self.folder / rel
        if path.is_file():
            return path
        lock = self.folder / ".locks" / (rel.replace("/", "__") + ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if path.is_file():
                return path
            size, sha = self.expected.get(rel, (0, ""))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
            with self._cache_lock():  # room made and reserved at once: concurrent fetches cannot overshoot
                self._make_room(size)
                with open(tmp, "wb") as f:
                    f.truncate(size)  # the reservation (sparse): counted by every other process at once
            why = ""
            for attempt in (1, 2):
                try:
                    self.fetch(rel, tmp)
                    self.fetches += 1
                    why = self._verify(tmp, size, sha)
                    if not why:
                        os.replace(tmp, path)
                        return path
                    log.warning("%s: the fetched copy %s (attempt %d of 2)", rel, why, attempt)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
            raise OSError(f"{rel}: fetched twice and both copies {why}: skipped")
        finally:
            os.close(fd)

    @staticmethod
    def _verify(path: Path, size: int, sha: str) -> str:
        """Why a fetched file is not the shard shards.parquet describes ("" when it is)."""
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            got = f.tell()
        if size and got != size:
            return f"has {got} bytes, shards.parquet says {size}"
        if sha and digest != sha:
            return "has another sha256 than shards.parquet"
        return ""

    @contextlib.contextmanager
    def _cache_lock(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def cached(self) -> list[tuple[Path, int, float]]:
        """(path, bytes, mtime) of every shard in the cache."""
        out = []
        for p in self.folder.rglob("*.tar"):
            if p.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = p.stat()
                out.append((p, st.st_size, st.st_mtime))
        return out

    def in_flight(self) -> int:
        """Bytes reserved by fetches under way (their temporary files, made at full size)."""
        total = 0
        for p in self.folder.rglob(".*.tar.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                total += p.stat().st_size
        return total

    def used(self) -> int:
        return sum(size for _, size, _ in self.cached()) + self.in_flight()

    def _make_room(self, need: int) -> None:
        """Evict unleased shards, least recently used first, until `need` more bytes fit."""
        files = sorted(self.cached(), key=lambda f: f[2])
        total = sum(size for _, size, _ in files) + self.in_flight()
        for path, size, _ in files:
            if total + need <= self.limit:
                return
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                total -= size
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # leased: in use by a reader of this node
            try:
                path.unlink(missing_ok=True)
                total -= size
            finally:
                os.close(fd)
        if total + need > self.limit:
            log.warning("shard cache %s: %d bytes in use by readers, %d more needed, limit %d: over the limit for now",
                        self.folder, total, need, self.limit)
