"""Check a built dataset against its manifests: every shard present with its recorded size and
sha256, every member of every tar named `<key>.<field>` and listed in samples.parquet at its
offset, every sample's members with their recorded hashes, the label in the tar equal to the
manifest row, and (with `decode`) LQ and GT decoding to the labelled size.

It streams: samples.parquet is read a batch at a time and cut into one shard's rows at a time
(the build writes it in shard order), each shard is read once from start to end (its sha256 and
its members in one pass), and a bounded number of shards is in flight, so memory is bounded by
the largest shard's rows, not by the dataset. Every path, span and image is checked through
`uir25m.reader` first: a tampered manifest or tar is a reported problem, never a traceback, and
nothing outside the dataset is read.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow.compute as pc
import pyarrow.parquet as pq

from uir25m import manifest, reader

_HASHED = ("lq", "gt")
_COLUMNS = list(dict.fromkeys([*manifest.LABEL_COLUMNS, "shard", "index", *manifest.MEMBER_COLUMNS,
                               "lq_sha256", "gt_sha256"]))


class _Hashing:
    """A read-only stream that hashes what is read through it (one pass: hash and parse)."""

    def __init__(self, f: BinaryIO):
        self.f, self.sha, self.pos = f, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha.update(data)
        self.pos += len(data)
        return data

    def finish(self) -> tuple[str, int]:
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest(), self.pos


def _check_shard(root: Path, shard: dict[str, Any], rows: list[dict[str, Any]], decode: bool) -> list[dict[str, str]]:
    rel = shard["shard"]
    problems: list[dict[str, str]] = []

    def bad(problem: str, key: str = "") -> None:
        problems.append({"shard": rel, "key": key, "problem": problem})

    path = root / rel
    try:
        st = os.stat(path)
    except OSError:
        bad("missing")
        return problems
    if not stat.S_ISREG(st.st_mode):
        bad("not a regular file")
        return problems
    if len(rows) != shard["count"]:
        bad(f"{len(rows)} samples in samples.parquet, {shard['count']} in shards.parquet")
    expected: dict[int, tuple[int, str]] = {}  # data offset -> (row, member field)
    for i, row in enumerate(rows):
        if not manifest.KEY_RE.match(str(row["key"])):
            bad(f"key {row['key']!r} breaks the key rule", str(row["key"]))
        for field in manifest.FIELDS:
            expected[row[f"{field.split('.')[0]}_offset"]] = (i, field)
    found: list[dict[str, bytes]] = [{} for _ in rows]
    broken: set[tuple[int, str]] = set()
    with open(path, "rb") as f:
        stream = _Hashing(f)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for member in tf:
                    if not member.isfile():
                        bad(f"member {member.name!r} is not a regular file")
                        continue
                    _member(member, tf, rows, expected, found, broken, bad)
        except (tarfile.TarError, EOFError) as e:
            bad(f"not a readable tar after byte {stream.pos} ({type(e).__name__}: {e})")
        digest, size = stream.finish()
        if size != shard["bytes"]:
            bad(f"size {size} != {shard['bytes']} in shards.parquet")
        if digest != shard["sha256"]:
            bad("sha256 differs from shards.parquet")
        for i, row in enumerate(rows):  # members the tar walk did not reach: read by their offsets
            for field in manifest.FIELDS:
                if field not in found[i]:
                    short = field.split(".")[0]
                    try:
                        found[i][field] = reader.read_span(f, row[f"{short}_offset"], row[f"{short}_size"], size,
                                                           f"{field} member")
                        bad(f"{field} member at byte {row[f'{short}_offset']} is not a member of the tar", row["key"])
                    except reader.DatasetError as e:
                        bad(f"{short} member cut short" if e.reason == "short_read" or "past the end" in str(e)
                            else str(e), row["key"])
                        broken.add((i, field))
    for i, row in enumerate(rows):
        _check_sample(row, found[i], {f for j, f in broken if j == i}, decode, bad)
    return problems


def _member(member: tarfile.TarInfo, tf: tarfile.TarFile, rows, expected, found, broken, bad) -> None:
    """One tar member: named <key>.<field>, at an offset samples.parquet lists, of its size."""
    try:
        reader.member_name(member.name, "tar")
    except reader.DatasetError:
        bad(f"member {member.name!r} is not named <key>.<field>")
        return
    hit = expected.get(member.offset_data)
    if hit is None:
        bad(f"member {member.name!r} at byte {member.offset_data} is not in samples.parquet")
        return
    i, field = hit
    row = rows[i]
    short = field.split(".")[0]
    if member.name != f"{row['key']}.{field}":
        bad(f"member {member.name!r} where samples.parquet has {row['key']}.{field}", row["key"])
    if member.size != row[f"{short}_size"]:
        bad(f"{short} member is {member.size} bytes, samples.parquet says {row[f'{short}_size']}", row["key"])
        broken.add((i, field))
    if member.size > reader.max_member_bytes():
        bad(f"{short} member of {member.size} bytes is over the limit", row["key"])
        broken.add((i, field))
        return
    data = tf.extractfile(member).read()
    if len(data) != member.size:
        bad(f"{short} member cut short", row["key"])
        broken.add((i, field))
    found[i][field] = data


def _check_sample(row: dict[str, Any], data: dict[str, bytes], broken: set[str], decode: bool, bad) -> None:
    key = row["key"]
    for side in _HASHED:
        blob = data.get(f"{side}.png", b"")
        if hashlib.sha256(blob).hexdigest() != row[f"{side}_sha256"]:
            bad(f"{side} bytes differ from their sha256", key)
            broken.add(f"{side}.png")
    try:
        label = json.loads(data.get("json", b""))
    except ValueError:
        bad("json member is not JSON", key)
        label = None
    if label is not None and label != {k: row[k] for k in manifest.LABEL_COLUMNS}:
        bad("label differs from samples.parquet", key)
    if data.get("cls") != str(row["class_id"]).encode():
        bad("cls member differs from the class id", key)
    if not decode:
        return
    for side in _HASHED:
        if f"{side}.png" in broken:
            continue  # reported already; decoding what is known broken proves nothing
        try:
            pixels = reader.decode_bgr(data[f"{side}.png"], f"{side} member")
        except reader.DatasetError as e:
            bad(f"{side} does not decode: {e}", key)
            continue
        if pixels.shape[:2] != (row["height"], row["width"]):
            bad(f"{side} is {pixels.shape[1]}x{pixels.shape[0]}, label says {row['width']}x{row['height']}", key)


def _shard_groups(path: Path, columns: list[str]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(shard, its rows) from samples.parquet, a batch at a time: consecutive rows of one shard
    (where the shard changes is found columnar; rows become dicts one shard at a time)."""
    pf = pq.ParquetFile(path)
    names = [c for c in columns if c in pf.schema_arrow.names]
    current, rows = None, []
    for batch in pf.iter_batches(batch_size=16_384, columns=names):
        shard_col = batch.column("shard")
        n = batch.num_rows
        if n == 0:
            continue
        cuts = [0]
        if n > 1:
            changed = pc.not_equal(shard_col.slice(1), shard_col.slice(0, n - 1))
            cuts += [int(j) + 1 for j in pc.indices_nonzero(changed).to_pylist()]
        for a, b in zip(cuts, cuts[1:] + [n]):
            name = shard_col[a].as_py()
            if name != current and current is not None:
                yield current, rows
                rows = []
            current = name
            rows.extend(batch.slice(a, b - a).to_pylist())
    if current is not None:
        yield current, rows


def verify(root: str | os.PathLike, *, decode: bool = False, workers: int = 4) -> dict[str, Any]:
    """Problems found (empty = the dataset matches its manifests), with counts."""
    root = Path(root)
    shard_table = manifest.read_shards(root)
    if not (root / manifest.SAMPLES).is_file():
        manifest.read_samples(root)  # raises with the build's state in the message
    problems: list[dict[str, str]] = []
    shards: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(shard_table.to_pylist()):  # one row per shard: thousands, not millions
        try:
            reader.check_shard_path(s["shard"], f"{manifest.SHARDS} row {i}")
        except reader.DatasetError as e:
            problems.append({"shard": str(s["shard"]), "key": "", "problem": f"{e} (not read)"})
            continue
        shards[s["shard"]] = s
    seen: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    samples = 0
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # hashing and reading release the GIL
        for name, rows in _shard_groups(root / manifest.SAMPLES, _COLUMNS):
            samples += len(rows)
            seen[name] += len(rows)
            runs[name] += 1
            if name not in shards:
                try:
                    reader.check_shard_path(name, f"{manifest.SAMPLES} row {samples - len(rows)}")
                    why = "samples point to a shard that shards.parquet does not list"
                except reader.DatasetError as e:
                    why = f"{e} (not read)"
                problems.append({"shard": str(name), "key": "", "problem": why})
                continue
            pending.append(pool.submit(_check_shard, root, shards[name], rows, decode))
            while len(pending) > 2 * max(1, workers):  # bounded: memory flat in the dataset size
                problems += pending.popleft().result()
        while pending:
            problems += pending.popleft().result()
    for name, n in sorted(runs.items()):
        if n > 1:
            problems.append({"shard": name, "key": "", "problem": f"samples.parquet lists its rows in {n} separate runs"})
    for name, s in shards.items():
        if name not in seen:
            problems += _check_shard(root, s, [], decode) if s["count"] else []
            if s["count"]:
                problems.append({"shard": name, "key": "", "problem": f"0 samples in samples.parquet, {s['count']} in shards.parquet"})
    listed = set(shards)
    data = root / "data"
    on_disk = {p.relative_to(root).as_posix() for p in data.rglob("*.tar")} if data.is_dir() else set()
    for name in sorted(on_disk - listed - {p["shard"] for p in problems}):
        problems.append({"shard": name, "key": "", "problem": "tar not listed in shards.parquet"})
    return {
        "root": str(root), "shards": shard_table.num_rows, "samples": samples, "decoded": decode,
        "ok": not problems, "problems": problems,
    }

