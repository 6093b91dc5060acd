"""Durable, atomic file writes: a hidden temporary name in the target folder, fsync, rename,
fsync of the folder. A reader never sees a half-written file; a crash leaves at most a
`.<name>.tmp-<pid>` file, which the next build removes."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Open `path` for binary writing; on a clean exit the file appears under its name (fsynced
    first when `durable`); on an exception the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    f = open(tmp, "wb")
    try:
        yield f
        f.flush()
        if durable:
            os.fsync(f.fileno())
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise
    f.close()
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    with atomic_open(path, durable=durable) as f:
        f.write(data)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike, *, durable: bool = True) -> None:
    """Copy `src`'s bytes to `dst` atomically (see atomic_open)."""
    with open(src, "rb") as f, atomic_open(dst, durable=durable) as out:
        shutil.copyfileobj(f, out, 1 << 20)


def hash_file(path: str | os.PathLike, digest: str | Callable[[], Any] = "sha256") -> tuple[str, int]:
    """The hex digest of a file's bytes (`digest`: a hashlib name or constructor) and their count."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, digest).hexdigest(), f.tell()
