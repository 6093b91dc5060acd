"""Durable, atomic file writes: a hidden temporary name in the target folder, fsync, rename,
fsync of the folder. A reader never sees a half-written file; a crash leaves at most a
`.<name>.tmp-<pid>` file, which the next build removes."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


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
