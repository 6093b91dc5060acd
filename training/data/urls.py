"""Reading a dataset or a shard wherever it is, through one class per kind of address:

- a local folder or `file://` path;
- `s3://bucket/prefix` (boto3; the endpoint from the loader option or AWS_ENDPOINT_URL, credentials
  as boto3 finds them; throttling and dropped connections retried by botocore's adaptive retries);
- `hf://user/name[@revision]` (a dataset repository on the Hugging Face Hub): the revision is
  resolved to its commit sha once, when the root is made, and every file is read at that sha
  (a push during training cannot move the bytes under the offsets); requests go straight to the
  Hub's `resolve` endpoint, retried with backoff on 429 / 5xx / dropped connections by
  huggingface_hub's own `http_backoff` (which honours Retry-After);
- `pipe:COMMAND` (a whole shard from a command's standard output, webdataset's convention).

A dataset root reads whole files and byte ranges (`Root.read`). For a remote root the loader
attaches a node-local shard cache (`training.data.cache`): `read` then fetches a shard once, with
one request, and serves every sample from the local copy.
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlparse

from uir25m import reader

_CLIENTS: dict[tuple, object] = {}  # per process: connections must not cross a fork


def _retries() -> tuple[int, float]:
    """(retries of one request before it counts as failed, first wait in seconds): 8 and 1 s, or
    UIR_REMOTE_RETRIES / UIR_REMOTE_BACKOFF."""
    return int(os.environ.get("UIR_REMOTE_RETRIES", 8)), float(os.environ.get("UIR_REMOTE_BACKOFF", 1.0))


def _s3_client(endpoint_url: str | None):
    key = (os.getpid(), endpoint_url)
    if key not in _CLIENTS:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ImportError("reading s3:// needs boto3: pip install 'uir25m[s3]'") from None
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        # ranged reads: a whole-object checksum cannot validate a byte range (some servers send one anyway);
        # SlowDown / 503 / dropped connections: botocore's adaptive retries with backoff
        config = Config(signature_version="s3v4", response_checksum_validation="when_required",
                        retries={"max_attempts": _retries()[0] + 1, "mode": "adaptive"})
        _CLIENTS[key] = boto3.client("s3", endpoint_url=endpoint, config=config)
    return _CLIENTS[key]


def _hub():
    try:
        from huggingface_hub import constants, utils
    except ImportError:
        raise ImportError("reading hf:// needs huggingface_hub: pip install 'uir25m[hub]'") from None
    return constants, utils


class Root:
    """A dataset root: read a whole file or a byte range of one, by path relative to the root."""

    def __init__(self, root: str, endpoint_url: str | None = None):
        self.url = root
        u = urlparse(root)
        self.scheme = u.scheme if u.scheme in ("s3", "hf", "file") else "local"
        self.endpoint_url = endpoint_url
        self.revision = ""  # hf: the commit sha every read uses
        self.cache = None  # a ShardCache for remote roots (attached by the loader)
        if self.scheme == "local":
            self.base = root
        elif self.scheme == "file":
            self.base = u.path
        elif self.scheme == "s3":
            self.bucket, self.prefix = u.netloc, u.path.strip("/")
        else:
            repo, _, revision = f"{u.netloc}{u.path}".strip("/").partition("@")
            if repo.count("/") != 1:
                raise ValueError(f"{root}: expected hf://user/name or hf://user/name@revision")
            self.repo = repo
            self.revision = self._resolve_revision(revision or "main")
        self._fds: dict[str, tuple[int, int]] = {}  # rel -> (descriptor, file size)
        self._sizes: dict[str, int] = {}

    @property
    def remote(self) -> bool:
        return self.scheme in ("s3", "hf")

    @property
    def ident(self) -> str:
        """What identifies the data read (the address, and the commit for hf://)."""
        if self.scheme == "hf":
            return f"hf://{self.repo}@{self.revision}"
        return self.url

    # --- hf:// -------------------------------------------------------------------------------------

    def _resolve_revision(self, revision: str) -> str:
        """The commit sha of a branch, tag or sha: one API call, made once per root."""
        constants, utils = _hub()
        endpoint = (self.endpoint_url or constants.ENDPOINT).rstrip("/")
        url = f"{endpoint}/api/datasets/{self.repo}/revision/{quote(revision, safe='')}"
        retries, wait = _retries()
        r = utils.http_backoff("GET", url, headers=utils.build_hf_headers(), max_retries=retries, base_wait_time=wait)
        if r.status_code == 404:
            raise FileNotFoundError(f"hf://{self.repo}@{revision}: no such dataset repository or revision")
        try:
            utils.hf_raise_for_status(r)
        except Exception as e:
            raise OSError(f"hf://{self.repo}@{revision}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
        return str(r.json()["sha"])

    def _hf_url(self, rel: str) -> str:
        constants, _ = _hub()
        endpoint = (self.endpoint_url or constants.ENDPOINT).rstrip("/")
        return f"{endpoint}/datasets/{self.repo}/resolve/{self.revision}/{quote(rel)}"

    def _hf_get(self, rel: str, headers: dict[str, str] | None = None, method: str = "GET"):
        _, utils = _hub()
        try:
            retries, wait = _retries()
            r = utils.http_backoff(method, self._hf_url(rel), headers={**utils.build_hf_headers(), **(headers or {})},
                                   max_retries=retries, base_wait_time=wait, follow_redirects=True)
            utils.hf_raise_for_status(r)
        except OSError:
            raise
        except Exception as e:  # huggingface_hub's HTTP errors, httpx's transport errors
            raise OSError(f"hf://{self.repo}@{self.revision[:12]}/{rel}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
        return r

    # --- reading -----------------------------------------------------------------------------------

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def read(self, rel: str, offset: int, size: int, group: str = "") -> bytes:
        """`size` bytes at `offset` of file `rel` (`rel` a checked relative path; `group`: the
        stream reading it, for the cache's leases). Raises OSError when the file is missing or the
        read comes back short or long, DatasetError (a ValueError) for a span that is negative, too
        large or past the end of a local file."""
        reader.check_span(offset, size, offset + size, rel)  # non-negative, under the maximum
        if self.cache is not None and rel.endswith(".tar"):
            fd, length = self.cache.open(rel, group)
            reader.check_span(offset, size, length, rel)
            data = os.pread(fd, size, offset)
        elif self.scheme in ("local", "file"):
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
            data = self._hf_get(rel, {"Range": f"bytes={offset}-{offset + size - 1}"}).content
        if len(data) < size:
            raise OSError(f"{rel}: short read at {offset} ({len(data)} of {size} bytes): truncated")
        if len(data) > size:
            raise OSError(f"{rel}: asked for {size} bytes at {offset}, got {len(data)}: the server ignored the "
                          "byte range (Range) of the request")
        return data

    def size(self, rel: str) -> int:
        """The file's size in bytes (one metadata request for a remote root, then remembered)."""
        if rel in self._sizes:
            return self._sizes[rel]
        if self.scheme in ("local", "file"):
            n = os.stat(os.path.join(self.base, rel)).st_size
        elif self.scheme == "s3":
            try:
                n = int(_s3_client(self.endpoint_url).head_object(Bucket=self.bucket, Key=self._key(rel))["ContentLength"])
            except Exception as e:
                raise OSError(f"s3://{self.bucket}/{self._key(rel)}: {e}") from None
        else:
            h = self._hf_get(rel, method="HEAD").headers
            n = int(h.get("X-Linked-Size") or h.get("Content-Length") or 0)
        self._sizes[rel] = n
        return n

    def fetch(self, rel: str, dest: Path) -> None:
        """The whole file into `dest`, with one request (streamed; retried with backoff)."""
        if self.scheme in ("local", "file"):
            with open(os.path.join(self.base, rel), "rb") as f, _into(dest) as out:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
            return
        if self.scheme == "s3":
            from boto3.s3.transfer import TransferConfig

            # one GET for a shard under 1 GiB, else 256 MiB ranges: few requests per shard (not per sample)
            whole = TransferConfig(multipart_threshold=1 << 30, multipart_chunksize=256 << 20, max_concurrency=4)
            try:
                _s3_client(self.endpoint_url).download_file(self.bucket, self._key(rel), str(dest), Config=whole)
            except Exception as e:
                raise OSError(f"s3://{self.bucket}/{self._key(rel)}: {e}") from None
            return
        _, utils = _hub()
        retries, wait = _retries()
        try:
            with utils.http_stream_backoff("GET", self._hf_url(rel), headers=utils.build_hf_headers(),
                                           max_retries=retries, base_wait_time=wait, follow_redirects=True) as r:
                utils.hf_raise_for_status(r)
                with _into(dest) as out:
                    for chunk in r.iter_bytes(1 << 20):
                        out.write(chunk)
        except Exception as e:
            raise OSError(f"hf://{self.repo}@{self.revision[:12]}/{rel}: {type(e).__name__}: {str(e).splitlines()[0]}") from None

    def read_parquet(self, rel: str, columns: list[str] | None = None, read_dictionary: list[str] | None = None):
        """A parquet file's table, only `columns` of it: local files through pyarrow directly;
        remote ones through ranged reads of the footer and of those columns' chunks (RangedFile),
        never the whole file."""
        with self.open_parquet(rel, read_dictionary=read_dictionary) as pf:
            return pf.read(columns=columns)

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
        return self._hf_get(rel).content

    def __getstate__(self) -> dict:  # open descriptors stay in the process that opened them
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state


@contextlib.contextmanager
def _into(dest: Path):
    """`dest` for writing from its start without truncating it first (a cache reserves a fetch's
    room by making the file at full size), cut to what was written at the end."""
    with open(dest, "r+b" if os.path.exists(dest) else "wb") as f:
        yield f
        f.truncate(f.tell())


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
    if u.scheme == "hf":  # hf://user/name[@revision]/path/in/repo
        parts = f"{u.netloc}{u.path}".split("/")
        root = Root(f"hf://{'/'.join(parts[:2])}", endpoint_url)
        return io.BytesIO(root.read_all("/".join(parts[2:])))
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
