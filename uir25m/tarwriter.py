"""A deterministic, atomic tar writer that reports where each member's bytes landed.

Fixed headers (mtime, uid/gid, names, mode; USTAR), members in the order given, the shard's
sha256 computed while writing; written through `atomic.atomic_open` (temp, fsync, rename).
webdataset's TarWriter defaults mtime to now and writes straight to the final name, and reports no
offsets: the offsets go into samples.parquet for random access.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from uir25m.atomic import atomic_open

MTIME = 946684800  # 2000-01-01T00:00:00Z, for every member
MODE = 0o444


BLOCK = 512
RECORD = 20 * BLOCK  # tar pads the archive to a whole record, as GNU tar and Python's tarfile do


class ShardTarWriter:
    """Use as a context manager; `add(name, data)` returns the data offset; on a clean exit the tar
    is renamed into place and `sha256`/`size` are set. On an exception nothing is left behind.

    Headers come from `tarfile.TarInfo.tobuf` (USTAR); the data is written in one call per member,
    not copied through tarfile's 16 KB buffer."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.sha256 = ""
        self.size = 0

    def __enter__(self) -> "ShardTarWriter":
        self._file = atomic_open(self.path)
        self._f = self._file.__enter__()
        self._sha = hashlib.sha256()
        # the shard's sha256 runs on its own thread (hashlib releases the GIL), in write order,
        # while this thread hashes the members and writes
        self._hasher = ThreadPoolExecutor(max_workers=1)
        self._pos = 0
        return self

    def _write(self, data: bytes) -> None:
        self._hasher.submit(self._sha.update, data)
        self._f.write(data)
        self._pos += len(data)

    def add(self, name: str, data: bytes) -> int:
        """Append one member; returns the byte offset of its data in the tar."""
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = MTIME
        info.mode = MODE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        self._write(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
        offset = self._pos
        self._write(data)
        if len(data) % BLOCK:
            self._write(bytes(BLOCK - len(data) % BLOCK))
        return offset

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            end = self._pos + 2 * BLOCK  # two zero blocks end the archive
            self._write(bytes(2 * BLOCK + (-end) % RECORD))
        self._hasher.shutdown(wait=True)
        if exc_type is None:
            self.sha256 = self._sha.hexdigest()
            self.size = self._pos
        self._file.__exit__(exc_type, exc, tb)
