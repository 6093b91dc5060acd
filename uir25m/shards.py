"""Build tasks and the worker that runs one: a task is one shard of one (partition, type, source)
stream; `ShardWorker(config)(task)` writes the tar, then its rejects part, then its samples part
(the done marker), and returns a TaskResult. Also: reading a shard back.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from uir25m import atomic, codec, degrade, manifest
from uir25m.manifest import FIELDS, REJECTS_SCHEMA, SAMPLES_SCHEMA
from uir25m.tarwriter import ShardTarWriter

CACHE_DIR = ".uir-cache"


def crashpoint(name: str) -> None:
    """Die here if UIR_CRASH_AT names this point (deterministic crash tests)."""
    if os.environ.get("UIR_CRASH_AT") == name:
        os._exit(77)


@dataclass(frozen=True)
class Item:
    """One planned sample."""

    key: str
    code: str
    source: str
    partition: str
    variant: str
    level: str  # "" for captured pairs
    real: bool
    seed: int  # per-sample seed; -1 for captured pairs
    gt: str  # relpath under the task's root
    tile: tuple[int, int, int, int] | None = None
    share_gt: bool = False  # other tasks use the same encoded GT: keep it in the on-disk cache


@dataclass(frozen=True)
class ShardTask:
    shard: str  # relpath of the tar under the output root
    partition: str
    code: str
    source: str
    root: str  # absolute source root
    items: tuple[Item, ...]


@dataclass(frozen=True)
class WorkerConfig:
    out: str
    png_level: int = codec.DEFAULT_PNG_LEVEL
    overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # code -> level -> spec
    strict: bool = False


@dataclass(frozen=True)
class TaskResult:
    shard: str
    ok: bool
    count: int = 0
    bytes: int = 0
    rejects: int = 0
    seconds: float = 0.0
    error: str = ""


def sample_seed(build_seed: int, key: str) -> int:
    """The per-sample seed: 60 bits of sha256(build seed, key)."""
    return int(hashlib.sha256(f"{int(build_seed)}:{key}".encode()).hexdigest()[:15], 16)


def part_path(out: str | os.PathLike, shard: str, suffix: str = "") -> Path:
    """manifests/parts/<shard path with / -> __>[.rejects].parquet"""
    stem = shard[:-4].replace("/", "__")
    return Path(out) / manifest.PARTS / f"{stem}{suffix}.parquet"


def is_done(out: str | os.PathLike, task: ShardTask) -> bool:
    return part_path(out, task.shard).is_file() and (Path(out) / task.shard).is_file()


def mark_shared_gts(tasks: list[ShardTask]) -> list[ShardTask]:
    """Flag the items whose GT (file + tile) more than one task uses: workers keep those encoded
    GTs in an on-disk cache so each is encoded once per build, whichever process gets there first."""
    users: dict[tuple, set[str]] = {}
    for t in tasks:
        for it in t.items:
            users.setdefault((t.source, it.gt, it.tile), set()).add(t.shard)
    shared = {k for k, v in users.items() if len(v) > 1}
    return [
        replace(t, items=tuple(replace(it, share_gt=(t.source, it.gt, it.tile) in shared) for it in t.items))
        for t in tasks
    ]


def chunk_stream(
    items: Iterable[Item], *, partition: str, code: str, source: str, root: str, shard_size: int
) -> list[ShardTask]:
    """Sort one stream's items (GT first, so variants of an image share one decode) and cut it
    into shards of `shard_size`."""
    ordered = sorted(items, key=lambda it: (it.gt, it.tile or (), it.variant, it.key))
    tasks = []
    for index, start in enumerate(range(0, len(ordered), shard_size)):
        tasks.append(ShardTask(
            manifest.shard_relpath(partition, code, source, index), partition, code, source, root,
            tuple(ordered[start:start + shard_size]),
        ))
    return tasks


class _DecodedCache:
    """The last few decoded source files of this process (bounded by pixel bytes), so variants and
    types that share a clean image decode it once per process, across tasks."""

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple, codec.Decoded] = OrderedDict()
        self.bytes = 0

    def get(self, ident: tuple) -> codec.Decoded | None:
        hit = self.items.get(ident)
        if hit is not None:
            self.items.move_to_end(ident)
        return hit

    def put(self, ident: tuple, decoded: codec.Decoded) -> None:
        size = decoded.pixels.nbytes + len(decoded.raw)
        if size > self.max_bytes:
            return
        self.items[ident] = decoded
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.bytes -= old.pixels.nbytes + len(old.raw)


_DECODED = _DecodedCache()


class _Reject(Exception):
    def __init__(self, path: str, reason: str, detail: str, stage: str):
        super().__init__(f"{path}: {reason}: {detail}")
        self.row = {"path": path, "reason": reason, "detail": detail, "stage": stage}


class ShardWorker:
    """Writes one shard; never raises unless `strict` (then the first bad input raises, naming the
    file and the reason). Picklable, so any executor can ship it to a process."""

    def __init__(self, config: WorkerConfig):
        self.config = config

    def __call__(self, task: ShardTask) -> TaskResult:
        import cv2

        cv2.setNumThreads(1)  # one task per core; also keeps results independent of thread counts
        t0 = time.perf_counter()
        try:
            count, size, rejects = self._write(task)
        except Exception as e:  # noqa: BLE001 - reported, retried, or re-raised in strict mode
            if self.config.strict:
                raise
            return TaskResult(task.shard, False, seconds=time.perf_counter() - t0, error=f"{type(e).__name__}: {e}")
        return TaskResult(task.shard, True, count, size, rejects, time.perf_counter() - t0)

    # --- one shard -------------------------------------------------------------------------------

    def _write(self, task: ShardTask) -> tuple[int, int, int]:
        out = Path(self.config.out)
        rows: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        with ShardTarWriter(out / task.shard) as tar:
            for item in task.items:
                try:
                    sample = self._sample(task, item)
                except _Reject as r:
                    if self.config.strict:
                        raise ValueError(f"{Path(task.root) / r.row['path']}: {r.row['reason']}: {r.row['detail']}") from None
                    row = {"source": task.source, "type": task.code, **r.row}
                    if row not in rejects:  # one row per file and reason, however many samples it fed
                        rejects.append(row)
                    continue
                label, lq_bytes, gt_bytes = sample
                members = {
                    "cls": str(label.class_id).encode(), "gt.png": gt_bytes,
                    "json": label.to_json_bytes(), "lq.png": lq_bytes,
                }
                row: dict[str, Any] = dict(label.__dict__)
                for name in FIELDS:
                    data = members[name]
                    short = name.split(".")[0]
                    row[f"{short}_offset"] = tar.add(f"{item.key}.{name}", data)
                    row[f"{short}_size"] = len(data)
                row.update(shard=task.shard, index=len(rows),
                           lq_sha256=hashlib.sha256(lq_bytes).hexdigest(),
                           gt_sha256=hashlib.sha256(gt_bytes).hexdigest())
                rows.append(row)
        crashpoint("after_shard_rename")
        if rejects:
            manifest.write_parquet(manifest.table(rejects, REJECTS_SCHEMA), part_path(out, task.shard, ".rejects"))
        shard_meta = {
            "shard": task.shard, "count": str(len(rows)), "bytes": str(tar.size), "sha256": tar.sha256,
        }
        manifest.write_parquet(manifest.table(rows, SAMPLES_SCHEMA), part_path(out, task.shard), shard_meta)
        crashpoint("after_part")
        return len(rows), tar.size, len(rejects)

    def _decode(self, root: str, relpath: str) -> codec.Decoded:
        path = Path(root) / relpath
        try:
            st = path.stat()
            ident = (str(path), st.st_size, st.st_mtime_ns)
            cached = _DECODED.get(ident)
            if cached is not None:
                return cached
            data = path.read_bytes()
        except OSError as e:
            raise _Reject(relpath, "unreadable", f"{type(e).__name__}: {e.strerror or e}", "decode") from None
        try:
            decoded = codec.decode(data)
        except codec.CodecError as e:
            raise _Reject(relpath, e.reason, e.detail, "decode") from None
        _DECODED.put(ident, decoded)
        return decoded

    def _gt_bytes(self, task: ShardTask, item: Item, decoded: codec.Decoded, pixels: np.ndarray) -> bytes:
        """The GT's shipped bytes: the file itself (8-bit RGB PNG, untiled) or one PNG encoding,
        shared across tasks through an on-disk cache (same bytes either way)."""
        if decoded.passthrough and item.tile is None:
            return decoded.raw
        if not item.share_gt:
            return codec.encode_png(pixels, self.config.png_level)
        ident = f"{task.source}|{item.gt}|{manifest.format_tile(item.tile)}|{self.config.png_level}"
        path = Path(self.config.out) / CACHE_DIR / "gt" / f"{hashlib.sha256(ident.encode()).hexdigest()}.png"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        data = codec.encode_png(pixels, self.config.png_level)
        atomic.write_bytes(path, data, durable=False)  # a cache: complete or absent, never torn
        return data

    def _sample(self, task: ShardTask, item: Item) -> tuple[manifest.Label, bytes, bytes]:
        gt_dec = self._decode(task.root, item.gt)
        gt_pix = codec.crop(gt_dec.pixels, item.tile)
        gt_bytes = self._gt_bytes(task, item, gt_dec, gt_pix)
        conversions = [f"gt:{c}" for c in gt_dec.conversions]
        override = self.config.overrides.get(item.code, {}).get(item.level)
        try:
            params = degrade.sample(item.code, np.random.default_rng(item.seed), item.level, override)
            lq_pix = degrade.apply(item.code, gt_pix, params)
            lq_bytes = codec.encode_png(lq_pix, self.config.png_level)
        except Exception as e:  # noqa: BLE001 - a degradation bug must not lose the input silently
            raise _Reject(item.gt, "degrade_failed", f"{item.code}/{item.level}: {type(e).__name__}: {e}", "degrade") from None
        h, w = gt_pix.shape[:2]
        label = manifest.make_label(
            key=item.key, code=item.code, partition=item.partition, source=item.source,
            variant=item.variant, real=item.real, level=item.level, params=params, seed=item.seed,
            width=w, height=h, lq_source_format="synthetic", gt_source_format=gt_dec.source_format,
            conversions=conversions, tile=manifest.format_tile(item.tile), source_lq="", source_gt=item.gt,
        )
        return label, lq_bytes, gt_bytes


# --- reading ---------------------------------------------------------------------------------------

def read_shard(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Samples of one shard as dicts keyed like the tar fields (`__key__`, `lq.png`, ...), bytes
    undecoded. Raises ValueError naming the shard on a malformed tar."""
    current: dict[str, Any] | None = None
    try:
        with tarfile.open(path, "r:") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                key, _, field_name = member.name.partition(".")
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key}
                if field_name in current:
                    raise ValueError(f"{path}: duplicate field {field_name!r} in sample {key!r}")
                f = tf.extractfile(member)
                current[field_name] = f.read() if f else b""
    except tarfile.TarError as e:
        raise ValueError(f"{path}: not a readable tar: {e}") from None
    if current is not None:
        yield current


def read_member(path: str | os.PathLike, offset: int, size: int) -> bytes:
    """One member's bytes by the offset and size recorded in samples.parquet."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ValueError(f"{path}: short read at offset {offset} ({len(data)} of {size} bytes)")
    return data
