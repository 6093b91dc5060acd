"""Publish a built dataset: to a folder (`file:///path`), the Hugging Face Hub (`hf://user/name`)
or an S3-compatible store (`s3://bucket/prefix`). One function per scheme in a dict; each checks
first, sends only what is not already there (a rerun after an interruption resends nothing that
arrived) and reports. Credentials come from the usual places (HF login / HF_TOKEN, AWS env and
config files) and are never printed."""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from uir25m import atomic, card, manifest, reader

if TYPE_CHECKING:
    import pyarrow as pa

TOP_FILES = ("README.md", card.CHART, manifest.BUILD_JSON, manifest.SAMPLES, manifest.SHARDS, manifest.REJECTS,
             manifest.CLEAN)  # clean.parquet: online datasets only (format 1.2)
HUB_MAX_FILES = 100_000  # per repository
HUB_MAX_ENTRIES = 10_000  # per folder (a commit that breaks it is rejected)
HUB_MAX_FILE = 500 * 10**9  # hard limit per file
HUB_ADVISED_FILE = 200 * 10**9


class PublishError(RuntimeError):
    """A push that must not happen (limits, rights) or failed."""


def _shards(root: Path, shards: pa.Table | None) -> pa.Table:
    return manifest.read_shards(root) if shards is None else shards


def files(root: str | os.PathLike, *, shards: pa.Table | None = None) -> list[str]:
    """What a push sends: the shards (with an online dataset's clean shards), the merged manifests,
    build.json, the card and chart.
    `shards`: shards.parquet when the caller has read it already."""
    root = Path(root)
    shard_paths = _shards(root, shards).column("shard").to_pylist()
    reader.check_column(shard_paths, f"{root / manifest.SHARDS}", shards=True)
    missing = [p for p in shard_paths if not (root / p).is_file()]
    if missing:
        raise PublishError(f"{root}: {len(missing)} shard(s) listed in shards.parquet are missing (e.g. {missing[0]}); "
                           "run `uir-build verify` and rebuild before publishing")
    if not (root / "README.md").is_file():
        raise PublishError(f"{root} has no dataset card: run `uir-build card {root}` first")
    return sorted(shard_paths + [f for f in TOP_FILES if (root / f).is_file()])


def checksums(root: Path, rels: list[str], *, shards: pa.Table | None = None) -> dict[str, str]:
    """sha256 of every file to send: the manifests' sums for the shards, computed for the rest."""
    known = dict(zip(*[_shards(root, shards).column(c).to_pylist() for c in ("shard", "sha256")]))
    return {rel: known.get(rel) or atomic.hash_file(root / rel)[0] for rel in rels}


def recorded(shards: pa.Table) -> dict[str, tuple[str, int]]:
    """shard -> (sha256, bytes) as shards.parquet records them."""
    return dict(zip(shards.column("shard").to_pylist(), zip(shards.column("sha256").to_pylist(),
                                                           shards.column("bytes").to_pylist())))


def check_shard(root: Path, rel: str, expected: dict[str, tuple[str, int]]) -> None:
    """Hash a shard as it is about to be sent and compare with shards.parquet's size and sha256: a
    damaged shard stops the push, naming it (the manifest's sum is never sent on trust)."""
    if rel not in expected:
        return  # not a shard: the manifests, build.json, the card
    want_sha, want_size = expected[rel]
    digest, size = atomic.hash_file(root / rel)
    if (digest, size) != (want_sha, want_size):
        raise PublishError(f"{rel}: {size} bytes with sha256 {digest[:12]}..., shards.parquet says {want_size} bytes, "
                           f"{want_sha[:12]}...: the shard is damaged; nothing more is sent. Run `uir-build verify "
                           f"{root}` and rebuild it")


def check_rights(root: Path, public: bool, hold_rights: bool, *, shards: pa.Table | None = None) -> list[str]:
    """Sources whose redistribution is not `yes`; raises for a public target without the flag."""
    names = sorted(set(_shards(root, shards).column("source").to_pylist()))
    blocked = [n for n in names if card._source_meta(n)["redistribution"] != "yes"]
    if public and blocked and not hold_rights:
        raise PublishError(
            f"refusing to publish publicly: the redistribution status of {', '.join(blocked)} is `no` or `unknown` in "
            "the source catalogue. Push with --private, or pass --i-hold-the-rights if you are entitled to "
            "redistribute these images.")
    return blocked


def check_hub_limits(root: Path, rels: list[str]) -> list[str]:
    """Refuse what the Hub would reject; return warnings for what it advises against."""
    if len(rels) >= HUB_MAX_FILES:
        raise PublishError(f"{len(rels)} files: the Hub takes fewer than {HUB_MAX_FILES} per repository; use larger shards (--shard-size)")
    per_folder = Counter(str(PurePosixPath(r).parent) for r in rels)
    folder, n = per_folder.most_common(1)[0]
    if n >= HUB_MAX_ENTRIES:
        raise PublishError(f"{folder} holds {n} files: the Hub rejects a folder of {HUB_MAX_ENTRIES} or more; "
                           "use larger shards (--shard-size)")
    warnings = []
    for rel in rels:
        size = (root / rel).stat().st_size
        if size > HUB_MAX_FILE:
            raise PublishError(f"{rel} is {size / 1e9:.0f} GB: the Hub's limit per file is 500 GB; use smaller shards")
        if size > HUB_ADVISED_FILE:
            warnings.append(f"{rel} is {size / 1e9:.0f} GB: the Hub advises files under 200 GB")
    return warnings


# --- schemes -------------------------------------------------------------------------------------

def _push_file(root: Path, url, rels: list[str], sums: dict[str, str], opts: dict[str, Any]) -> dict[str, Any]:
    dest = Path(url.path)
    sent = skipped = 0
    for rel in rels:
        target = dest / rel
        if target.is_file() and target.stat().st_size == (root / rel).stat().st_size and atomic.hash_file(target)[0] == sums[rel]:
            skipped += 1
            continue
        check_shard(root, rel, opts["expected"])
        atomic.copy_file(root / rel, target)
        sent += 1
    return {"sent": sent, "skipped": skipped}


def _push_hf(root: Path, url, rels: list[str], sums: dict[str, str], opts: dict[str, Any]) -> dict[str, Any]:
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        raise ImportError("pushing to the Hub needs huggingface_hub: pip install 'uir25m[hub]'") from None
    repo_id = f"{url.netloc}{url.path}".strip("/")
    if repo_id.count("/") != 1:
        raise PublishError(f"hf:// needs hf://user/name, got hf://{repo_id}")
    if not opts["progress"]:
        disable_progress_bars()
    api = HfApi(endpoint=opts.get("endpoint_url"))
    api.create_repo(repo_id, repo_type="dataset", private=opts["private"], exist_ok=True)
    # `private` only applies to a new repository: check what the repository really is
    if not api.repo_info(repo_id, repo_type="dataset").private:
        check_rights(root, public=True, hold_rights=opts["hold_rights"], shards=opts.get("shards"))
    for rel in rels:  # one commit: every shard is checked before any is sent
        check_shard(root, rel, opts["expected"])
    info = api.upload_folder(folder_path=str(root), repo_id=repo_id, repo_type="dataset", allow_patterns=rels,
                             commit_message=f"uir-build push: {len(rels)} files")
    return {"commit": str(info)}


def _push_s3(root: Path, url, rels: list[str], sums: dict[str, str], opts: dict[str, Any]) -> dict[str, Any]:
    try:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config
        from botocore.exceptions import ClientError
    except ImportError:
        raise ImportError("pushing to S3 needs boto3: pip install 'uir25m[s3]'") from None
    bucket, prefix = url.netloc, url.path.strip("/")
    client = boto3.client("s3", endpoint_url=opts.get("endpoint_url"), config=Config(signature_version="s3v4"))
    transfer = TransferConfig(multipart_threshold=256 * 2**20, multipart_chunksize=128 * 2**20)
    sent = skipped = 0
    for rel in rels:
        key = f"{prefix}/{rel}" if prefix else rel
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
            if head["ContentLength"] == (root / rel).stat().st_size and meta.get("sha256") == sums[rel]:
                skipped += 1
                continue
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise PublishError(f"s3://{bucket}/{key}: {e.response.get('Error', {}).get('Message', e)}") from None
        check_shard(root, rel, opts["expected"])
        client.upload_file(str(root / rel), bucket, key, ExtraArgs={"Metadata": {"sha256": sums[rel]}}, Config=transfer)
        sent += 1
    return {"sent": sent, "skipped": skipped}


SCHEMES: dict[str, Callable[..., dict[str, Any]]] = {"file": _push_file, "hf": _push_hf, "s3": _push_s3}


def push(root: str | os.PathLike, to: str, *, private: bool = False, endpoint_url: str | None = None,
         hold_rights: bool = False, progress: bool = True) -> dict[str, Any]:
    """Publish `root` to `to`; returns a summary (files, sent, skipped, bytes, warnings)."""
    root = Path(root)
    url = urlparse(to)
    if url.scheme not in SCHEMES:
        raise PublishError(f"unknown target {to!r}: use file:///path, hf://user/name or s3://bucket/prefix")
    shards = manifest.read_shards(root)
    rels = files(root, shards=shards)
    public = url.scheme == "hf" and not private  # a folder or a bucket is yours: making it public is your act
    blocked = check_rights(root, public, hold_rights, shards=shards)
    warnings = check_hub_limits(root, rels) if url.scheme == "hf" else []
    sums = {} if url.scheme == "hf" else checksums(root, rels, shards=shards)  # the Hub hashes what it sends itself
    result = SCHEMES[url.scheme](root, url, rels, sums, {"private": private, "endpoint_url": endpoint_url,
                                                         "progress": progress, "hold_rights": hold_rights,
                                                         "shards": shards, "expected": recorded(shards)})
    return {"to": to, "files": len(rels), "bytes": sum((root / r).stat().st_size for r in rels), "public": public,
            "not_redistributable": blocked, "warnings": warnings, **result}
