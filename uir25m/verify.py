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
                               "lq_sha256", "gt_sha256", "online", "clean_key"]))
CLEAN_FIELDS = ("json", "png")  # the members of a clean image (format 1.2), in tar order
_JSON = pj.ParseOptions(explicit_schema=manifest.LABEL_SCHEMA, unexpected_field_behavior="error")


def _padded(size: np.ndarray) -> np.ndarray:
    return -(-size // BLOCK) * BLOCK


def _check_shard(root: Path, shard: dict[str, Any], rows: pa.Table, decode: bool) -> list[dict[str, str]]:
    data, problems, bad = _open_shard(root, shard, rows.num_rows, "samples in samples.parquet")
    if data is None:
        return problems
    size, n = len(data), rows.num_rows
    keys = [str(k) for k in rows.column("key").to_pylist()]
    for k in keys:
        if not manifest.KEY_RE.match(k):
            bad(f"key {k!r} breaks the key rule", k)
    offset = np.stack([rows.column(f"{s}_offset").to_numpy(zero_copy_only=False) for s in _SHORT], axis=1).astype(np.int64)
    length = np.stack([rows.column(f"{s}_size").to_numpy(zero_copy_only=False) for s in _SHORT], axis=1).astype(np.int64)
    online = (manifest.with_added_columns(rows, ["online"]).column("online").to_numpy(zero_copy_only=False)
              .astype(bool))
    absent = np.zeros_like(offset, dtype=bool)  # an online sample (format 1.2) has no gt / lq member
    absent[:, 1] = absent[:, 3] = online
    _check_online(rows, online, offset, length, keys, bad)
    broken = _check_spans(offset, length, size, keys, bad, absent=absent)
    _check_headers(data, offset, length, broken, keys, bad)
    _check_layout(data, offset, length, broken, bad)
    view = memoryview(data)  # members as views: no copy of the shard's bytes
    ends = offset + length
    members = [[view[a:b] for a, b in zip(o, e)] for o, e in zip(offset.tolist(), ends.tolist())]
    for i, j in zip(*np.nonzero(broken)):
        members[i][j] = b""
    for j, side in ((3, "lq"), (1, "gt")):
        want = rows.column(f"{side}_sha256").to_pylist()
        for i in np.flatnonzero(~online):
            if hashlib.sha256(members[i][j]).hexdigest() != want[i]:
                bad(f"{side} bytes differ from their sha256", keys[i])
                broken[i, j] = True
    broken &= ~absent
    _check_labels(rows, [m[2] for m in members], broken[:, 2], keys, bad)
    for i, cls in enumerate(rows.column("class_id").to_pylist()):
        if members[i][0] != str(cls).encode():
            bad("cls member differs from the class id", keys[i])
    if decode:
        width, height = rows.column("width").to_pylist(), rows.column("height").to_pylist()
        for i in range(n):
            for j, side in ((3, "lq"), (1, "gt")):
                if broken[i, j] or absent[i, j]:
                    continue  # reported already: decoding what is known broken proves nothing
                try:
                    pixels = reader.decode_bgr(members[i][j], f"{side} member")
                except reader.DatasetError as e:
                    bad(f"{side} does not decode: {e}", keys[i])
                    continue
                if pixels.shape[:2] != (height[i], width[i]):
                    bad(f"{side} is {pixels.shape[1]}x{pixels.shape[0]}, label says {width[i]}x{height[i]}", keys[i])
    return problems


def _check_clean_shard(root: Path, shard: dict[str, Any], rows: pa.Table, decode: bool) -> list[dict[str, str]]:
    """A clean shard of an online dataset (format 1.2) against clean.parquet: size and sha256, each
    image's `<key>.json` (its record) and `<key>.png` (its sha256; decoded, its size) at their
    recorded spans, and nothing else in the tar."""
    data, problems, bad = _open_shard(root, shard, rows.num_rows, "images in clean.parquet")
    if data is None:
        return problems
    keys = [str(k) for k in rows.column("key").to_pylist()]
    offset = np.stack([rows.column(f"{f}_offset").to_numpy(zero_copy_only=False) for f in CLEAN_FIELDS], axis=1)
    length = np.stack([rows.column(f"{f}_size").to_numpy(zero_copy_only=False) for f in CLEAN_FIELDS], axis=1)
    offset, length = offset.astype(np.int64), length.astype(np.int64)
    broken = _check_spans(offset, length, len(data), keys, bad, names=CLEAN_FIELDS)
    _check_headers(data, offset, length, broken, keys, bad, fields=CLEAN_FIELDS)
    _check_layout(data, offset, length, broken, bad)
    records = rows.select(["key", "source", "partition", "path", "width", "height", "source_format", "conversions"])
    sums = rows.column("sha256").to_pylist()
    for i, (record, (jo, po), (js, ps)) in enumerate(zip(records.to_pylist(), offset.tolist(), length.tolist())):
        if not manifest.KEY_RE.match(keys[i]):
            bad(f"key {keys[i]!r} breaks the key rule", keys[i])
        if not broken[i, 0]:
            try:
                if json.loads(data[jo:jo + js]) != record:
                    bad("json member differs from clean.parquet", keys[i])
            except ValueError:
                bad("json member is not JSON", keys[i])
        if broken[i, 1]:
            continue
        png = data[po:po + ps]
        if hashlib.sha256(png).hexdigest() != sums[i]:
            bad("png bytes differ from their sha256", keys[i])
        elif decode:
            try:
                pixels = reader.decode_bgr(png, "png member")
            except reader.DatasetError as e:
                bad(f"png does not decode: {e}", keys[i])
                continue
            if pixels.shape[:2] != (record["height"], record["width"]):
                bad(f"png is {pixels.shape[1]}x{pixels.shape[0]}, clean.parquet says "
                    f"{record['width']}x{record['height']}", keys[i])
    return problems


def _open_shard(root: Path, shard: dict[str, Any], listed: int, what: str):
    """(the shard's bytes or None, its problems, the function that adds one): read, with its size,
    sha256 and count held to shards.parquet."""
    rel = shard["shard"]
    problems: list[dict[str, str]] = []

    def bad(problem: str, key: str = "") -> None:
        problems.append({"shard": rel, "key": key, "problem": problem})

    data = _read_regular(root / rel, bad)
    if data is None:
        return None, problems, bad
    if len(data) != shard["bytes"]:
        bad(f"size {len(data)} != {shard['bytes']} in shards.parquet")
    if hashlib.sha256(data).hexdigest() != shard["sha256"]:
        bad("sha256 differs from shards.parquet")
    if listed != shard["count"]:
        bad(f"{listed} {what}, {shard['count']} in shards.parquet")
    return data, problems, bad


def _read_regular(path: Path, bad) -> bytes | None:
    """The bytes of a regular file, or None (reported) when it is missing or not one."""
    try:
        st = os.stat(path)
    except OSError:
        bad("missing")
        return None
    if not stat.S_ISREG(st.st_mode):
        bad("not a regular file")
        return None
    with open(path, "rb") as f:
        return f.read()


def _check_online(rows: pa.Table, online: np.ndarray, offset: np.ndarray, length: np.ndarray, keys: list[str],
                  bad) -> None:
    """An online sample (format 1.2): synthetic, no image member or sum, and the clean image its
    source GT names; a stored one names none."""
    if not online.any() and "clean_key" not in rows.column_names:
        return
    cols = manifest.with_added_columns(rows, ["clean_key", "source", "source_gt", "real", "lq_sha256", "gt_sha256"])
    clean, source, gt = (cols.column(c).to_pylist() for c in ("clean_key", "source", "source_gt"))
    real, lq_sum, gt_sum = (cols.column(c).to_pylist() for c in ("real", "lq_sha256", "gt_sha256"))
    for i in np.flatnonzero(online):
        if real[i]:
            bad("online sample marked as a real capture: only synthetic samples can be made online", keys[i])
        if offset[i, 1] or length[i, 1] or offset[i, 3] or length[i, 3] or lq_sum[i] or gt_sum[i]:
            bad("online sample records an LQ or GT member", keys[i])
        try:
            want = manifest.clean_key(source[i], gt[i])
        except manifest.FormatError as e:
            want = f"({e})"
        if clean[i] != want:
            bad(f"online sample's clean_key {clean[i]!r} is not that of its source GT ({want})", keys[i])
    for i in np.flatnonzero(~online):
        if clean[i]:
            bad(f"stored sample names a clean image ({clean[i]!r})", keys[i])


def _check_spans(offset: np.ndarray, length: np.ndarray, size: int, keys: list[str], bad, *,
                 absent: np.ndarray | None = None, names: tuple[str, ...] = tuple(_SHORT)) -> np.ndarray:
    """Members whose recorded span cannot be read (reported); True = broken. `absent` members (an
    online sample's images) are broken without a report: nothing of them is in the tar."""
    limit = reader.max_member_bytes()
    absent = np.zeros_like(offset, dtype=bool) if absent is None else absent
    negative = ~absent & ((offset < BLOCK) | (length < 0))
    over = ~absent & ~negative & (length > limit)
    past = ~absent & ~negative & ~over & (offset + length > size)
    for i, j in zip(*np.nonzero(negative | over | past)):
        where = f"{names[j]} member"
        if negative[i, j]:
            bad(f"{where}: negative offset or size ({offset[i, j]}, {length[i, j]}), or no room for its header", keys[i])
        elif over[i, j]:
            bad(f"{where}: {length[i, j]} bytes is over the limit of {limit}", keys[i])
        else:
            bad(f"{where} cut short: bytes {offset[i, j]}..{offset[i, j] + length[i, j]} of a {size}-byte shard", keys[i])
    return negative | over | past | absent


def _check_headers(data: bytes, offset: np.ndarray, length: np.ndarray, broken: np.ndarray, keys: list[str], bad,
                   fields: tuple[str, ...] = manifest.FIELDS) -> None:
    """Each member's ustar header: named `<key>.<field>`, a regular file, of the recorded size
    (compared as arrays; a header that differs is then read field by field to say how)."""
    rows, cols = np.nonzero(~broken)
    if not len(rows):
        return
    buf = np.frombuffer(data, dtype=np.uint8)
    heads = buf[(offset[rows, cols] - BLOCK)[:, None] + np.arange(BLOCK)]  # M x 512
    want = np.array([f"{keys[i]}.{fields[j]}".encode() for i, j in zip(rows, cols)], dtype="S100")
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
        expected = f"{keys[i]}.{fields[j]}"
        try:
            size = int(h[124:136].strip(b"\0 ") or b"0", 8)
        except ValueError:
            size = -1
        broken[i, j] = True
        if name != expected:
            bad(f"member {name!r} where samples.parquet has {expected}", keys[i])
        elif h[156:157] not in (b"0", b"\0") or size != length[i, j]:
            bad(f"{fields[j].split('.')[0]} member: its header says {size} bytes (type {h[156:157]!r}), samples.parquet "
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


def _check_clean(root: Path, shards: dict[str, dict[str, Any]], online_keys: list[pa.Array],
                 decode: bool) -> list[dict[str, str]]:
    """The clean shards (format 1.2) against clean.parquet, and every online sample's clean image
    listed there."""
    problems: list[dict[str, str]] = []
    clean_rows = {n: s for n, s in shards.items() if s.get("kind") == "clean"}
    table = manifest.read_clean(root)
    wanted = pc.unique(pa.concat_arrays(online_keys)) if online_keys else pa.array([], pa.string())
    missing = pc.filter(wanted, pc.invert(pc.is_in(wanted, value_set=table.column("key"))))
    for key in missing.to_pylist()[:20]:
        problems.append({"shard": manifest.CLEAN, "key": key, "problem": "online samples name a clean image "
                                                                           "clean.parquet does not list"})
    if len(missing) > 20:
        problems.append({"shard": manifest.CLEAN, "key": "", "problem": f"{len(missing) - 20} more clean images missing"})
    if not table.num_rows and not clean_rows:
        return problems
    for name, rows in _group_by_shard(table):
        if name not in clean_rows:
            problems.append({"shard": str(name), "key": "", "problem": "clean.parquet lists a shard that shards.parquet "
                                                                      "does not list as clean"})
            continue
        problems += _check_clean_shard(root, clean_rows.pop(name), rows, decode)
    for name, s in sorted(clean_rows.items()):
        problems += _check_clean_shard(root, s, table.slice(0, 0), decode)
    return problems


def _group_by_shard(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(shard, its rows in tar order) of a clean.parquet table."""
    order = pc.sort_indices(table, sort_keys=[("shard", "ascending"), ("png_offset", "ascending")])
    table = table.take(order)
    shard = table.column("shard").to_pylist()
    start = 0
    for i in range(1, len(shard) + 1):
        if i == len(shard) or shard[i] != shard[start]:
            yield shard[start], table.slice(start, i - start)
            start = i


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
    online_keys: list[pa.Array] = []  # the clean images online samples are made from (format 1.2)
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
            if "online" in rows.column_names:
                online_keys.append(pc.unique(rows.filter(rows.column("online")).column("clean_key")))
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
        if name not in seen and s["count"] and s.get("kind", "samples") == "samples":
            problems += _check_shard(root, s, empty, decode)
    problems += _check_clean(root, shards, online_keys, decode)
    listed = set(shards)
    on_disk = {p.relative_to(root).as_posix() for top in ("data", "clean") if (root / top).is_dir()
               for p in (root / top).rglob("*.tar")}
    for name in sorted(on_disk - listed - {p["shard"] for p in problems}):
        problems.append({"shard": name, "key": "", "problem": "tar not listed in shards.parquet"})
    return {
        "root": str(root), "shards": shard_table.num_rows, "samples": samples, "decoded": decode,
        "ok": not problems, "problems": problems,
    }
