"""Check a built dataset against its manifests: every shard present with its recorded size and
sha256; the tar laid out exactly as samples.parquet says (every member's header named
`<key>.<field>` with its recorded size, the members one after another from the first byte, only
the end-of-archive blocks after the last, so an extra or renamed member cannot hide); every
sample's LQ and GT with their recorded sha256; the label in the tar equal to the manifest row; the
cls member equal to the class id; and (with `decode`) LQ and GT decoding to the labelled size.

It streams: samples.parquet is read a batch at a time and cut into one shard's rows at a time (a
build writes it in shard order); each shard is read once, hashed, and checked with array
operations (headers, layout, labels through pyarrow's JSON reader), so its cost is hashing the
bytes, not handling the manifest. Shards in flight are bounded in bytes (`max_bytes`, at least the
largest shard): memory is bounded by the largest shard, not by the dataset. Paths, spans and
images are checked through `uir25m.reader`: a tampered manifest or tar is a reported problem,
never a traceback, and nothing outside the dataset is read.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import threading
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from uir25m import manifest, reader

BLOCK = 512
_SHORT = [f.split(".")[0] for f in manifest.FIELDS]  # cls, gt, json, lq
_COLUMNS = list(dict.fromkeys([*manifest.LABEL_COLUMNS, "shard", "index", *manifest.MEMBER_COLUMNS,
                               "lq_sha256", "gt_sha256"]))
_JSON = pj.ParseOptions(explicit_schema=manifest.LABEL_SCHEMA, unexpected_field_behavior="error")


def _padded(size: np.ndarray) -> np.ndarray:
    return -(-size // BLOCK) * BLOCK


def _check_shard(root: Path, shard: dict[str, Any], rows: pa.Table, decode: bool) -> list[dict[str, str]]:
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
    with open(path, "rb") as f:
        data = f.read()
    size = len(data)
    if size != shard["bytes"]:
        bad(f"size {size} != {shard['bytes']} in shards.parquet")
    if hashlib.sha256(data).hexdigest() != shard["sha256"]:
        bad("sha256 differs from shards.parquet")
    n = rows.num_rows
    if n != shard["count"]:
        bad(f"{n} samples in samples.parquet, {shard['count']} in shards.parquet")
    keys = [str(k) for k in rows.column("key").to_pylist()]
    for k in keys:
        if not manifest.KEY_RE.match(k):
            bad(f"key {k!r} breaks the key rule", k)
    offset = np.stack([rows.column(f"{s}_offset").to_numpy(zero_copy_only=False) for s in _SHORT], axis=1).astype(np.int64)
    length = np.stack([rows.column(f"{s}_size").to_numpy(zero_copy_only=False) for s in _SHORT], axis=1).astype(np.int64)
    broken = _check_spans(offset, length, size, keys, bad)
    _check_headers(data, offset, length, broken, keys, bad)
    _check_layout(data, offset, length, broken, bad)
    view = memoryview(data)  # members as views: no copy of the shard's bytes
    ends = offset + length
    members = [[view[a:b] for a, b in zip(o, e)] for o, e in zip(offset.tolist(), ends.tolist())]
    for i, j in zip(*np.nonzero(broken)):
        members[i][j] = b""
    for j, side in ((3, "lq"), (1, "gt")):
        want = rows.column(f"{side}_sha256").to_pylist()
        for i in range(n):
            if hashlib.sha256(members[i][j]).hexdigest() != want[i]:
                bad(f"{side} bytes differ from their sha256", keys[i])
                broken[i, j] = True
    _check_labels(rows, [m[2] for m in members], broken[:, 2], keys, bad)
    for i, cls in enumerate(rows.column("class_id").to_pylist()):
        if members[i][0] != str(cls).encode():
            bad("cls member differs from the class id", keys[i])
    if decode:
        width, height = rows.column("width").to_pylist(), rows.column("height").to_pylist()
        for i in range(n):
            for j, side in ((3, "lq"), (1, "gt")):
                if broken[i, j]:
                    continue  # reported already: decoding what is known broken proves nothing
                try:
                    pixels = reader.decode_bgr(members[i][j], f"{side} member")
                except reader.DatasetError as e:
                    bad(f"{side} does not decode: {e}", keys[i])
                    continue
                if pixels.shape[:2] != (height[i], width[i]):
                    bad(f"{side} is {pixels.shape[1]}x{pixels.shape[0]}, label says {width[i]}x{height[i]}", keys[i])
    return problems


def _check_spans(offset: np.ndarray, length: np.ndarray, size: int, keys: list[str], bad) -> np.ndarray:
    """Members whose recorded span cannot be read (reported); True = broken."""
    limit = reader.max_member_bytes()
    negative = (offset < BLOCK) | (length < 0)
    over = ~negative & (length > limit)
    past = ~negative & ~over & (offset + length > size)
    for i, j in zip(*np.nonzero(negative | over | past)):
        where = f"{_SHORT[j]} member"
        if negative[i, j]:
            bad(f"{where}: negative offset or size ({offset[i, j]}, {length[i, j]}), or no room for its header", keys[i])
        elif over[i, j]:
            bad(f"{where}: {length[i, j]} bytes is over the limit of {limit}", keys[i])
        else:
            bad(f"{where} cut short: bytes {offset[i, j]}..{offset[i, j] + length[i, j]} of a {size}-byte shard", keys[i])
    return negative | over | past


def _check_headers(data: bytes, offset: np.ndarray, length: np.ndarray, broken: np.ndarray, keys: list[str], bad) -> None:
    """Each member's ustar header: named `<key>.<field>`, a regular file, of the recorded size
    (compared as arrays; a header that differs is then read field by field to say how)."""
    rows, cols = np.nonzero(~broken)
    if not len(rows):
        return
    buf = np.frombuffer(data, dtype=np.uint8)
    heads = buf[(offset[rows, cols] - BLOCK)[:, None] + np.arange(BLOCK)]  # M x 512
    want = np.array([f"{keys[i]}.{manifest.FIELDS[j]}".encode() for i, j in zip(rows, cols)], dtype="S100")
    names_ok = (heads[:, :100] == want.view(np.uint8).reshape(len(want), 100)).all(axis=1)
    digits = heads[:, 124:135].astype(np.int64) - 48  # the writer's 11 zero-padded octal digits
    octal = ((digits >= 0) & (digits <= 7)).all(axis=1)
    recorded = (np.where(octal[:, None], digits, 0) * (8 ** np.arange(10, -1, -1))).sum(axis=1)
    kind_ok = np.isin(heads[:, 156], (ord("0"), 0))
    fine = names_ok & octal & kind_ok & (recorded == length[rows, cols])
    for m in np.flatnonzero(~fine):
        i, j = rows[m], cols[m]
        h = bytes(heads[m])
        name = h[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        expected = f"{keys[i]}.{manifest.FIELDS[j]}"
        try:
            size = int(h[124:136].strip(b"\0 ") or b"0", 8)
        except ValueError:
            size = -1
        broken[i, j] = True
        if name != expected:
            bad(f"member {name!r} where samples.parquet has {expected}", keys[i])
        elif h[156:157] not in (b"0", b"\0") or size != length[i, j]:
            bad(f"{_SHORT[j]} member: its header says {size} bytes (type {h[156:157]!r}), samples.parquet "
                f"says {length[i, j]}", keys[i])
        else:
            broken[i, j] = False  # a header other writers spell differently (spaces in the size): fine


def _check_layout(data: bytes, offset: np.ndarray, length: np.ndarray, broken: np.ndarray, bad) -> None:
    """The members must tile the tar from byte 0, with only zero blocks after the last: any other
    byte range holds something samples.parquet does not list (an extra or renamed member)."""
    ok = ~broken.ravel()
    heads = (offset.ravel() - BLOCK)[ok]
    ends = (offset.ravel() + _padded(length.ravel()))[ok]
    order = np.argsort(heads, kind="stable")
    heads, ends = heads[order], ends[order]
    expected_heads = np.concatenate([[0], ends[:-1]]) if len(ends) else np.zeros(0, np.int64)
    gaps = [(int(a), int(b)) for a, b in zip(expected_heads, heads) if a < b]
    tail = int(ends[-1]) if len(ends) else 0
    if tail < len(data) and any(data[tail:]):
        gaps.append((tail, len(data)))
    for start, stop in gaps:
        bad(_what_lies_at(data, start, stop))


def _what_lies_at(data: bytes, start: int, stop: int) -> str:
    """A problem naming the member found in bytes [start, stop) of a tar (or saying it is none)."""
    try:
        info = tarfile.TarInfo.frombuf(data[start:start + BLOCK], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, EOFError):
        return f"bytes {start}..{stop} are not a member samples.parquet lists (and not a readable tar header)"
    try:
        reader.member_name(info.name, "tar")
    except reader.DatasetError:
        return f"member {info.name!r} at byte {start} is not named <key>.<field>"
    return f"member {info.name!r} at byte {start} is not in samples.parquet"


def _check_labels(rows: pa.Table, blobs: list[bytes], broken: np.ndarray, keys: list[str], bad) -> None:
    """Every label member equal to its manifest row: all parsed at once by pyarrow's JSON reader
    and compared column by column; a shard whose labels do not parse that way is checked row by
    row (to name the bad ones)."""
    good = [i for i in range(len(blobs)) if not broken[i]]
    if not good:
        return
    text = b"\n".join(blobs[i] for i in good)
    try:  # labels never hold a raw newline: one that does changes the row count, and is checked row by row
        parsed = pj.read_json(io.BytesIO(text), parse_options=_JSON,
                              read_options=pj.ReadOptions(use_threads=False, block_size=len(text) + 1))
        if parsed.num_rows != len(good):
            raise pa.ArrowInvalid("row count")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        for i in good:
            try:
                label = json.loads(bytes(blobs[i]))
            except ValueError:
                bad("json member is not JSON", keys[i])
                continue
            if label != {k: rows.column(k)[i].as_py() for k in manifest.LABEL_COLUMNS}:
                bad("label differs from samples.parquet", keys[i])
        return
    expected = rows.take(pa.array(good))
    differs = np.zeros(len(good), dtype=bool)
    for c in manifest.LABEL_COLUMNS:
        same = pc.fill_null(pc.equal(parsed.column(c), expected.column(c)), False)
        differs |= ~same.to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(differs):
        bad("label differs from samples.parquet", keys[good[i]])


def _shard_tables(path: Path, columns: list[str]) -> Iterator[tuple[str, pa.Table]]:
    """(shard, its rows) from samples.parquet, a batch at a time: consecutive rows of one shard
    (where the shard changes is found columnar)."""
    pf = pq.ParquetFile(path)
    names = [c for c in columns if c in pf.schema_arrow.names]
    current, pieces = None, []
    for batch in pf.iter_batches(batch_size=16_384, columns=names):
        n = batch.num_rows
        if not n:
            continue
        shard_col = batch.column("shard")
        cuts = [0]
        if n > 1:
            changed = pc.not_equal(shard_col.slice(1), shard_col.slice(0, n - 1))
            cuts += [int(j) + 1 for j in pc.indices_nonzero(pc.fill_null(changed, True)).to_pylist()]
        for a, b in zip(cuts, cuts[1:] + [n]):
            name = shard_col[a].as_py()
            if name != current and current is not None:
                yield current, pa.Table.from_batches(pieces)
                pieces = []
            current = name
            pieces.append(batch.slice(a, b - a))
    if current is not None:
        yield current, pa.Table.from_batches(pieces)


class _Budget:
    """Bytes of shards in flight: a shard waits until the ones before it leave room (one shard of
    any size always proceeds alone)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    def take(self, n: int) -> None:
        with self.cond:
            while self.used and self.used + n > self.limit:
                self.cond.wait()
            self.used += n

    def give(self, n: int) -> None:
        with self.cond:
            self.used -= n
            self.cond.notify_all()


def verify(root: str | os.PathLike, *, decode: bool = False, workers: int = 4, max_bytes: int = 1 << 30) -> dict[str, Any]:
    """Problems found (empty = the dataset matches its manifests), with counts. At most
    `max_bytes` of shards are held at once (or the one shard being checked, if larger)."""
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
    budget = _Budget(max_bytes)

    def check(s: dict[str, Any], rows: pa.Table) -> list[dict[str, str]]:
        try:
            return _check_shard(root, s, rows, decode)
        finally:
            budget.give(s["bytes"])

    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # hashing and pyarrow release the GIL
        for name, rows in _shard_tables(root / manifest.SAMPLES, _COLUMNS):
            samples += rows.num_rows
            seen[name] += rows.num_rows
            runs[name] += 1
            if name not in shards:
                try:
                    reader.check_shard_path(name, f"{manifest.SAMPLES} row {samples - rows.num_rows}")
                    why = "samples point to a shard that shards.parquet does not list"
                except reader.DatasetError as e:
                    why = f"{e} (not read)"
                problems.append({"shard": str(name), "key": "", "problem": why})
                continue
            size = max(0, int(shards[name]["bytes"]))
            budget.take(size)
            pending.append(pool.submit(check, shards[name], rows))
            while pending and (pending[0].done() or len(pending) > 2 * max(1, workers)):
                problems += pending.popleft().result()
        while pending:
            problems += pending.popleft().result()
    for name, n in sorted(runs.items()):
        if n > 1:
            problems.append({"shard": name, "key": "", "problem": f"samples.parquet lists its rows in {n} separate runs"})
    empty = manifest.SAMPLES_SCHEMA.empty_table()
    for name, s in shards.items():
        if name not in seen and s["count"]:
            problems += _check_shard(root, s, empty, decode)
    listed = set(shards)
    data = root / "data"
    on_disk = {p.relative_to(root).as_posix() for p in data.rglob("*.tar")} if data.is_dir() else set()
    for name in sorted(on_disk - listed - {p["shard"] for p in problems}):
        problems.append({"shard": name, "key": "", "problem": "tar not listed in shards.parquet"})
    return {
        "root": str(root), "shards": shard_table.num_rows, "samples": samples, "decoded": decode,
        "ok": not problems, "problems": problems,
    }
