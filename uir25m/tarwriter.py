"""A deterministic, atomic tar writer that reports where each member's bytes landed.

Fixed headers (mtime, uid/gid, names, mode; USTAR), members in the order given, the shard's
sha256 computed while writing; written through `atomic.atomic_open` (temp, fsync, rename).
webdataset's TarWriter defaults mtime to now and writes straight to the final name, and reports no
offsets: the offsets go into samples.parquet for random access.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from uir25m.atomic import atomic_open

MTIME = 946684800  # 2000-01-01T00:00:00Z, for every member
MODE = 0o444


class _HashingFile(io.RawIOBase):
    def __init__(self, f: io.BufferedWriter):
        self.f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, b) -> int:  # type: ignore[override]
        self.sha.update(b)
        self.size += len(b)
        return self.f.write(b)


class ShardTarWriter:
    """Use as a context manager; `add(name, data)` returns the data offset; on a clean exit the tar
    is renamed into place and `sha256`/`size` are set. On an exception nothing is left behind."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.sha256 = ""
        self.size = 0

    def __enter__(self) -> "ShardTarWriter":
        self._file = atomic_open(self.path)
        self._hf = _HashingFile(self._file.__enter__())
        self._tar = tarfile.open(fileobj=self._hf, mode="w", format=tarfile.USTAR_FORMAT)
        return self

    def add(self, name: str, data: bytes) -> int:
        """Append one member; returns the byte offset of its data in the tar."""
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = MTIME
        info.mode = MODE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        header_len = len(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
        offset = self._tar.offset + header_len
        self._tar.addfile(info, io.BytesIO(data))
        return offset

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._tar.close()  # writes the end-of-archive blocks through the hashing file
            self.sha256 = self._hf.sha.hexdigest()
            self.size = self._hf.size
        self._file.__exit__(exc_type, exc, tb)
