"""Check a built dataset against its manifests: every shard present with its recorded size and
sha256, every sample's members at their recorded offsets with their recorded hashes, the label in
the tar equal to the manifest row, and (with `decode`) LQ and GT decoding to the labelled size."""
from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from uir25m import atomic, codec, manifest

_MEMBERS = (("cls", "cls"), ("gt", "gt.png"), ("json", "json"), ("lq", "lq.png"))


def _check_shard(root: Path, shard: dict[str, Any], rows: list[dict[str, Any]], decode: bool) -> list[dict[str, str]]:
    path = root / shard["shard"]
    problems = []

    def bad(problem: str, key: str = "") -> None:
        problems.append({"shard": shard["shard"], "key": key, "problem": problem})

    if not path.is_file():
        bad("missing")
        return problems
    digest, size = atomic.hash_file(path)
    if size != shard["bytes"]:
        bad(f"size {size} != {shard['bytes']} in shards.parquet")
    if digest != shard["sha256"]:
        bad("sha256 differs from shards.parquet")
    if len(rows) != shard["count"]:
        bad(f"{len(rows)} samples in samples.parquet, {shard['count']} in shards.parquet")
    with open(path, "rb") as f:
        for row in rows:
            data = {}
            for short, _name in _MEMBERS:
                f.seek(row[f"{short}_offset"])
                data[short] = f.read(row[f"{short}_size"])
                if len(data[short]) != row[f"{short}_size"]:
                    bad(f"{short} member cut short", row["key"])
            if hashlib.sha256(data["lq"]).hexdigest() != row["lq_sha256"]:
                bad("lq bytes differ from their sha256", row["key"])
            if hashlib.sha256(data["gt"]).hexdigest() != row["gt_sha256"]:
                bad("gt bytes differ from their sha256", row["key"])
            try:
                label = json.loads(data["json"])
            except ValueError:
                bad("json member is not JSON", row["key"])
                label = None
            if label is not None and label != {k: row[k] for k in manifest.LABEL_COLUMNS}:
                bad("label differs from samples.parquet", row["key"])
            if data["cls"] != str(row["class_id"]).encode():
                bad("cls member differs from the class id", row["key"])
            if decode:
                for side in ("lq", "gt"):
                    try:
                        pixels = codec.decode_png(data[side])
                    except codec.CodecError as e:
                        bad(f"{side} does not decode: {e.detail}", row["key"])
                        continue
                    if pixels.shape[:2] != (row["height"], row["width"]):
                        bad(f"{side} is {pixels.shape[1]}x{pixels.shape[0]}, label says {row['width']}x{row['height']}", row["key"])
    return problems


def verify(root: str | os.PathLike, *, decode: bool = False, workers: int = 4) -> dict[str, Any]:
    """Problems found (empty = the dataset matches its manifests), with counts."""
    root = Path(root)
    shards = manifest.read_shards(root).to_pylist()
    samples = manifest.read_samples(root).to_pylist()
    by_shard: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in samples:
        by_shard[row["shard"]].append(row)
    problems: list[dict[str, str]] = []
    listed = {s["shard"] for s in shards}
    for name in sorted(set(by_shard) - listed):
        problems.append({"shard": name, "key": "", "problem": "samples point to a shard that shards.parquet does not list"})
    on_disk = {str(p.relative_to(root)) for p in (root / "data").rglob("*.tar")} if (root / "data").is_dir() else set()
    for name in sorted(on_disk - listed):
        problems.append({"shard": name, "key": "", "problem": "tar not listed in shards.parquet"})
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # hashing and reading release the GIL
        for found in pool.map(lambda s: _check_shard(root, s, by_shard.get(s["shard"], []), decode), shards):
            problems += found
    return {
        "root": str(root), "shards": len(shards), "samples": len(samples), "decoded": decode,
        "ok": not problems, "problems": problems,
    }
