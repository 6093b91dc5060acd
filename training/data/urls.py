"""Reading shards wherever they are, through one function per kind of address:

- a local folder or `file://` path;
- `s3://bucket/prefix` (boto3; the endpoint from the loader option or AWS_ENDPOINT_URL, credentials
  as boto3 finds them);
- `hf://user/name` (a dataset repository on the Hugging Face Hub, via huggingface_hub's HfFileSystem);
- `pipe:COMMAND` (a whole shard from a command's standard output, webdataset's convention).

A dataset root supports ranged reads (`Root.read`), so samples are read by the offsets in
samples.parquet; a `pipe:` shard is read from start to end (`open_stream`).
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
from typing import BinaryIO
from urllib.parse import urlparse

from uir25m import reader

_CLIENTS: dict[tuple, object] = {}  # per process: connections must not cross a fork


def _s3_client(endpoint_url: str | None):
    key = (os.getpid(), endpoint_url)
    if key not in _CLIENTS:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ImportError("reading s3:// needs boto3: pip install 'uir25m[s3]'") from None
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        # ranged reads: a whole-object checksum cannot validate a byte range (some servers send one anyway)
        config = Config(signature_version="s3v4", response_checksum_validation="when_required")
        _CLIENTS[key] = boto3.client("s3", endpoint_url=endpoint, config=config)
    return _CLIENTS[key]


def _hf_fs():
    key = (os.getpid(), "hf")
    if key not in _CLIENTS:
        try:
            from huggingface_hub import HfFileSystem
        except ImportError:
            raise ImportError("reading hf:// needs huggingface_hub: pip install 'uir25m[hub]'") from None
        _CLIENTS[key] = HfFileSystem()
    return _CLIENTS[key]


class Root:
    """A dataset root: read a whole file or a byte range of one, by path relative to the root."""

    def __init__(self, root: str, endpoint_url: str | None = None):
        self.url = root
        u = urlparse(root)
        self.scheme = u.scheme if u.scheme in ("s3", "hf", "file") else "local"
        self.endpoint_url = endpoint_url
        if self.scheme == "local":
            self.base = root
        elif self.scheme == "file":
            self.base = u.path
        elif self.scheme == "s3":
            self.bucket, self.prefix = u.netloc, u.path.strip("/")
        else:
            self.base = f"datasets/{u.netloc}{u.path}".rstrip("/")
        self._fds: dict[str, tuple[int, int]] = {}  # rel -> (descriptor, file size)

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def read(self, rel: str, offset: int, size: int) -> bytes:
        """`size` bytes at `offset` of file `rel` (`rel` a checked relative path). Raises OSError
        when the file is missing or the read comes back short or long, DatasetError (a
        ValueError) for a span that is negative, too large or past the end of a local file."""
        reader.check_span(offset, size, offset + size, rel)  # non-negative, under the maximum
        if self.scheme in ("local", "file"):
            fd, length = self._fds.get(rel, (None, 0))
            if fd is None:
                fd = os.open(os.path.join(self.base, reader.check_relpath(rel, "shard")), os.O_RDONLY)
                length = os.fstat(fd).st_size
                self._fds[rel] = (fd, length)
            reader.check_span(offset, size, length, rel)
            data = os.pread(fd, size, offset)
        elif self.scheme == "s3":
            try:
                obj = _s3_client(self.endpoint_url).get_object(Bucket=self.bucket, Key=self._key(rel),
                                                               Range=f"bytes={offset}-{offset + size - 1}")
                data = obj["Body"].read()
            except Exception as e:  # botocore's errors: not found, denied, connection
                raise OSError(f"s3://{self.bucket}/{self._key(rel)}: {e}") from None
        else:
            # no read-ahead cache: fsspec's default fetches 5 MiB beyond every sample
            with _hf_fs().open(f"{self.base}/{rel}", "rb", cache_type="none") as f:
                f.seek(offset)
                data = f.read(size)
        if len(data) < size:
            raise OSError(f"{rel}: short read at {offset} ({len(data)} of {size} bytes): truncated")
        if len(data) > size:
            raise OSError(f"{rel}: asked for {size} bytes at {offset}, got {len(data)}: the server ignored the "
                          "byte range (Range) of the request")
        return data

    def size(self, rel: str) -> int:
        """The file's size in bytes (one metadata request for a remote root)."""
        if self.scheme in ("local", "file"):
            return os.stat(os.path.join(self.base, rel)).st_size
        if self.scheme == "s3":
            try:
                return int(_s3_client(self.endpoint_url).head_object(Bucket=self.bucket, Key=self._key(rel))["ContentLength"])
            except Exception as e:
                raise OSError(f"s3://{self.bucket}/{self._key(rel)}: {e}") from None
        return int(_hf_fs().info(f"{self.base}/{rel}")["size"])

    def read_parquet(self, rel: str, columns: list[str] | None = None, read_dictionary: list[str] | None = None):
        """A parquet file's table, only `columns` of it: local files through pyarrow directly;
        remote ones through ranged reads of the footer and of those columns' chunks (RangedFile),
        never the whole file."""
        import pyarrow.parquet as pq

        if self.scheme in ("local", "file"):
            return pq.read_table(os.path.join(self.base, rel), columns=columns, read_dictionary=read_dictionary)
        with RangedFile(self, rel) as f:
            return pq.ParquetFile(f, read_dictionary=read_dictionary, pre_buffer=True).read(columns=columns)

    @contextlib.contextmanager
    def open_parquet(self, rel: str, read_dictionary: list[str] | None = None):
        """A pyarrow ParquetFile over `rel` (remote: over ranged reads, see read_parquet)."""
        import pyarrow.parquet as pq

        if self.scheme in ("local", "file"):
            with pq.ParquetFile(os.path.join(self.base, rel), read_dictionary=read_dictionary) as pf:
                yield pf
            return
        with RangedFile(self, rel) as f:
            yield pq.ParquetFile(f, read_dictionary=read_dictionary, pre_buffer=True)

    def read_all(self, rel: str) -> bytes:
        if self.scheme in ("local", "file"):
            with open(os.path.join(self.base, rel), "rb") as f:
                return f.read()
        if self.scheme == "s3":
            try:
                return _s3_client(self.endpoint_url).get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
            except Exception as e:
                raise OSError(f"s3://{self.bucket}/{self._key(rel)}: {e}") from None
        with _hf_fs().open(f"{self.base}/{rel}", "rb") as f:
            return f.read()

    def __getstate__(self) -> dict:  # open descriptors stay in the process that opened them
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over a remote root's ranged reads: each read the parquet reader
    makes (footer, then the selected columns' chunks, coalesced by pyarrow's pre-buffering) becomes
    one request of at least MIN_READ bytes; the last response is kept for the small reads after it."""

    MIN_READ = 64 << 10

    def __init__(self, root: Root, rel: str):
        self.root, self.rel = root, rel
        self.length = root.size(rel)
        self.pos = 0
        self._start, self._buf = 0, b""
        self.requests = self.fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, b) -> int:
        n = min(len(b), self.length - self.pos)
        if n <= 0:
            return 0
        if not (self._start <= self.pos and self.pos + n <= self._start + len(self._buf)):
            size = min(max(n, self.MIN_READ), self.length - self.pos)
            self._start, self._buf = self.pos, self.root.read(self.rel, self.pos, size)
            self.requests += 1
            self.fetched += size
        at = self.pos - self._start
        memoryview(b)[:n] = self._buf[at:at + n]
        self.pos += n
        return n


def open_stream(url: str, endpoint_url: str | None = None) -> BinaryIO:
    """A readable stream over a whole shard: a path, file://, s3://, hf:// or pipe:COMMAND."""
    if url.startswith("pipe:"):
        proc = subprocess.Popen(url[5:], shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return _PipeStream(proc)
    u = urlparse(url)
    if u.scheme in ("", "file"):
        return open(u.path if u.scheme else url, "rb")
    if u.scheme == "s3":
        try:
            return _s3_client(endpoint_url).get_object(Bucket=u.netloc, Key=u.path.lstrip("/"))["Body"]
        except Exception as e:
            raise OSError(f"{url}: {e}") from None
    if u.scheme == "hf":
        return _hf_fs().open(f"datasets/{u.netloc}{u.path}", "rb")
    raise ValueError(f"cannot open {url!r}: use a path, file://, s3://, hf:// or pipe:")


class _PipeStream(io.RawIOBase):
    """A command's stdout; closing waits for the command and reports its failure."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return self.proc.stdout.readinto(b)

    def close(self) -> None:
        if not self.closed:
            self.proc.stdout.close()
            code = self.proc.wait()
            super().close()
            if code != 0:
                raise OSError(f"pipe command exited with status {code}")
