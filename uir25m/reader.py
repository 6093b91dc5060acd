"""Reading a built dataset as untrusted input: the one place where the format's paths, spans,
member names and images are checked before anything is read, linked, copied, uploaded or keyed.

- Paths from a manifest (shards, samples, rejects) are relative POSIX paths without `..`, `.`,
  empty or absolute parts and without NUL or backslash (`check_relpath`); shard paths also lie
  under `data/` and end in `.tar` (`check_shard_path`). Reads may follow links to regular files
  (a `snapshot_download` copy is links into `blobs/`), but every write, link and upload key is
  built from the checked relative path, never from a resolved target.
- A member's span (offset, size) must be non-negative, inside the file and under a sane maximum
  (`max_member_bytes`: what an image within Pillow's decompression-bomb limit can take as PNG).
- An image's size is read from its header and held to Pillow's bomb limit before it is inflated
  (`image_size`, `decode_bgr`).
- Tar members come grouped by sample key (`iter_tar`), each name checked to be `<key>.<field>`.

Every violation raises `DatasetError` (a `ValueError`) whose message names the manifest row or
the member; readers turn it into a reported problem or a counted fault.
"""
from __future__ import annotations

import os
import struct
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from uir25m import manifest


class DatasetError(ValueError):
    """A dataset that breaks the format: an unsafe path, a bad span, an image over the limit,
    a malformed member. `reason` is a short code (`unsafe_path`, `bad_span`, `too_large`, ...)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# --- paths ---------------------------------------------------------------------------------------

def check_relpath(path: object, where: str) -> str:
    """`path` if it is a safe relative POSIX path, else DatasetError naming `where`."""
    if not isinstance(path, str) or not path:
        raise DatasetError("unsafe_path", f"{where}: path {path!r} is empty or not text")
    why = ""
    if "\x00" in path or "\\" in path:
        why = "holds a NUL or a backslash"
    elif path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        why = "is absolute"
    else:
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            why = "has an empty, '.' or '..' part"
    if why:
        raise DatasetError("unsafe_path", f"{where}: path {path!r} {why}: a dataset's paths must stay inside it")
    return path


def check_shard_path(path: object, where: str) -> str:
    """A shard path: safe, under data/ (or clean/, format 1.2), ending in .tar."""
    check_relpath(path, where)
    if not (path.startswith(("data/", "clean/")) and path.endswith(".tar")):
        raise DatasetError("unsafe_path", f"{where}: shard path {path!r} is not data/.../<name>.tar")
    return path


def within(root: str | os.PathLike, rel: str, where: str) -> Path:
    """`root / rel` after checking `rel` (for reading; the result may be a link to a regular file)."""
    return Path(root) / check_relpath(rel, where)


def check_column(values, where: str, *, shards: bool = False) -> None:
    """Check every path of a manifest column (an Arrow array or a list); the error names the first
    row holding a bad one. Each distinct path is checked once (a shard column repeats its ~2,500
    paths over millions of rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    check = check_shard_path if shards else check_relpath
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string())
    if arr.null_count:
        raise DatasetError("unsafe_path", f"{where} row {pc.index(pc.is_null(arr), True).as_py()}: the path is null")
    for value in pc.unique(arr).to_pylist():
        try:
            check(value, where)
        except DatasetError as e:
            row = pc.index(arr, value).as_py()
            raise DatasetError(e.reason, str(e).replace(where, f"{where} row {row}", 1)) from None


# --- spans ---------------------------------------------------------------------------------------

def max_member_bytes() -> int:
    """The largest member a reader accepts: an uncompressed RGB PNG of twice Pillow's
    MAX_IMAGE_PIXELS (what the builder ships at most), plus headroom; 1 GiB without a limit."""
    limit = Image.MAX_IMAGE_PIXELS
    return int(2 * limit * 3 * 1.02) + (1 << 20) if limit else 1 << 30


def check_span(offset: object, size: object, file_size: int, where: str) -> tuple[int, int]:
    """(offset, size) if they are integers, non-negative, under the maximum and inside the file."""
    if isinstance(offset, bool) or isinstance(size, bool) or not isinstance(offset, (int, np.integer)) \
            or not isinstance(size, (int, np.integer)):
        raise DatasetError("bad_span", f"{where}: offset {offset!r} / size {size!r} are not integers")
    offset, size = int(offset), int(size)
    if offset < 0 or size < 0:
        raise DatasetError("bad_span", f"{where}: negative offset {offset} or size {size}")
    if size > max_member_bytes():
        raise DatasetError("bad_span", f"{where}: a member of {size} bytes is over the limit of {max_member_bytes()}")
    if offset + size > file_size:
        raise DatasetError("bad_span", f"{where}: bytes {offset}..{offset + size} lie past the end of the "
                                       f"{file_size}-byte file")
    return offset, size


def read_span(f: BinaryIO | int, offset: int, size: int, file_size: int, where: str) -> bytes:
    """`size` checked bytes at `offset` of an open file (object or descriptor)."""
    offset, size = check_span(offset, size, file_size, where)
    if isinstance(f, int):
        data = os.pread(f, size, offset)
    else:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise DatasetError("short_read", f"{where}: short read at {offset} ({len(data)} of {size} bytes)")
    return data


def read_member(path: str | os.PathLike, offset: int, size: int) -> bytes:
    """One member's bytes by the offset and size recorded in samples.parquet (span checked)."""
    with open(path, "rb") as f:
        return read_span(f, offset, size, os.fstat(f.fileno()).st_size, str(path))


# --- images --------------------------------------------------------------------------------------

def pixel_limit() -> int | None:
    """The largest image (pixels) any reader decodes: twice Pillow's MAX_IMAGE_PIXELS, Pillow's own
    point of refusal (None: no limit)."""
    return 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None


def image_size(data: bytes, where: str) -> tuple[int, int]:
    """(width, height) from the image's header, without inflating it; DatasetError over the limit
    or when no decoder recognises the header."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                import io

                with Image.open(io.BytesIO(data)) as im:  # reads the header only
                    w, h = im.size
        except Image.DecompressionBombError as e:
            raise DatasetError("too_large", f"{where}: {e}") from None
        except Exception as e:  # noqa: BLE001 - any header Pillow cannot read
            raise DatasetError("undecodable", f"{where}: not a readable image ({type(e).__name__})") from None
    limit = pixel_limit()
    if limit and w * h > limit:
        raise DatasetError("too_large", f"{where}: {w}x{h} = {w * h} pixels is over the limit of {limit} "
                                        "(twice Pillow's MAX_IMAGE_PIXELS): a possible decompression bomb")
    if w <= 0 or h <= 0:
        raise DatasetError("undecodable", f"{where}: image of {w}x{h}")
    return int(w), int(h)


def decode_bgr(data: bytes, where: str) -> np.ndarray:
    """8-bit BGR pixels (OpenCV's order) of a PNG or JPEG member, its size checked first."""
    import cv2

    w, h = image_size(data, where)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise DatasetError("undecodable", f"{where}: the image does not decode")
    if arr.shape[:2] != (h, w):
        raise DatasetError("undecodable", f"{where}: decoded to {arr.shape[1]}x{arr.shape[0]}, its header says {w}x{h}")
    return arr


# --- tar members ---------------------------------------------------------------------------------

def member_name(name: str, where: str) -> tuple[str, str]:
    """(key, field) of a member named `<key>.<field>` with a valid key and no folder."""
    key, dot, field = name.partition(".")
    if not dot or "/" in name or "\\" in name or not manifest.KEY_RE.match(key) or not field:
        raise DatasetError("bad_member", f"{where}: member {name!r} is not named <key>.<field>")
    return key, field


def iter_tar(fileobj: BinaryIO, where: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) per sample of a tar stream, members grouped by key in stream order.
    Non-file members are skipped; a malformed name, a repeated field or a broken tar raises
    DatasetError naming `where`."""
    current, fields = None, {}
    limit = max_member_bytes()
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                key, field = member_name(member.name, where)
                if member.size > limit:
                    raise DatasetError("bad_span", f"{where}: member {member.name!r} of {member.size} bytes is over the limit")
                if key != current and current is not None:
                    yield current, fields
                    fields = {}
                current = key
                if field in fields:
                    raise DatasetError("bad_member", f"{where}: sample {key!r} has field {field!r} twice")
                f = tf.extractfile(member)
                fields[field] = f.read() if f else b""
    except (tarfile.TarError, EOFError) as e:
        raise DatasetError("bad_tar", f"{where}: not a readable tar ({type(e).__name__}: {e})") from None
    if current is not None:
        yield current, fields


def read_shard(path: str | os.PathLike) -> Iterator[dict[str, bytes | str]]:
    """Samples of one shard file as dicts keyed like the tar fields (`__key__`, `lq.png`, ...),
    bytes undecoded; DatasetError naming the shard on a malformed tar or member."""
    with open(path, "rb") as f:
        for key, fields in iter_tar(f, str(path)):
            yield {"__key__": key, **fields}
