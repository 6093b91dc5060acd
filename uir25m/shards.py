"""Build tasks and the worker that runs one: a task is one shard of one (partition, type, source)
stream; `ShardWorker(config)(task)` writes the tar, then its rejects part, then its samples part
(the done marker), and returns a TaskResult. Reading a shard back is `uir25m.reader`'s.
"""
from __future__ import annotations

import hashlib
import os
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


@dataclass(frozen=True, slots=True)
class Item:
    """One planned source item: a captured pair (`lq` set) or a clean image to degrade (`lq` "").
    It becomes one sample, or one per tile when `tile_size` cuts it at build time."""

    code: str
    source: str
    partition: str
    variant: str
    level: str  # "" for captured pairs
    real: bool
    gt: str  # relpath under the task's root
    lq: str = ""
    tile: tuple[int, int, int, int] | None = None  # a fixed window (the demo)
    tile_size: int = 0  # cut into tiles of this size at build time (0: whole images)
    share_gt: bool = False  # other tasks use the same GT: keep its encodings in the on-disk cache

    def key(self, tile: str = "") -> str:
        return manifest.sample_key(self.code, self.source, self.lq, self.gt, self.variant, tile)

    @property
    def identity(self) -> tuple:
        return (self.code, self.source, self.lq, self.gt, self.variant, self.tile)


@dataclass(frozen=True)
class ShardTask:
    shard: str  # relpath of the tar under the output root
    partition: str
    code: str  # "" for a clean-image shard
    source: str
    root: str  # absolute source root
    items: tuple[Item, ...]
    kind: str = "samples"  # or "clean": the clean images of online samples, once each (format 1.2)


@dataclass(frozen=True)
class WorkerConfig:
    out: str
    seed: int = 0  # the build seed; per-sample seeds derive from it and the key
    png_level: int = codec.DEFAULT_PNG_LEVEL
    overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # code -> level -> spec
    strict: bool = False
    online: bool = False  # synthetic samples store only cls + json; their clean images go to clean shards


@dataclass(frozen=True)
class TaskResult:
    shard: str
    ok: bool
    count: int = 0
    bytes: int = 0
    rejects: int = 0
    seconds: float = 0.0
    error: str = ""
    items: int = 0


def sample_seed(build_seed: int, key: str) -> int:
    """The per-sample seed: 60 bits of sha256(build seed, key)."""
    return int(hashlib.sha256(f"{int(build_seed)}:{key}".encode()).hexdigest()[:15], 16)


def _positions(n: int, size: int) -> list[int]:
    if n <= size:
        return [0]
    pos = list(range(0, n - size + 1, size))
    if pos[-1] + size < n:
        pos.append(n - size)  # the last tile is aligned to the edge (it overlaps the previous one)
    return pos


def tile_grid(width: int, height: int, size: int) -> list[tuple[int, int, int, int] | None]:
    """Tiles of `size` covering the image: a grid with the last row and column aligned to the
    edges; [None] (the whole image) when size is 0 or the image fits in one tile."""
    if size <= 0 or (width <= size and height <= size):
        return [None]
    return [(x, y, min(size, width), min(size, height)) for y in _positions(height, size) for x in _positions(width, size)]


def part_path(out: str | os.PathLike, shard: str, suffix: str = "") -> Path:
    """manifests/parts/<shard path with / -> __>[.rejects].parquet"""
    stem = shard[:-4].replace("/", "__")
    return Path(out) / manifest.PARTS / f"{stem}{suffix}.parquet"


def is_done(out: str | os.PathLike, task: ShardTask) -> bool:
    return part_path(out, task.shard).is_file() and (Path(out) / task.shard).is_file()


def mark_shared_gts(tasks: list[ShardTask]) -> list[ShardTask]:
    """Flag the items whose GT file more than one task uses: workers keep those encoded GTs in an
    on-disk cache so each is encoded once per build, whichever process gets there first."""
    users: dict[tuple, set[str]] = {}
    for t in tasks:
        for it in t.items:
            users.setdefault((t.source, it.gt, it.tile), set()).add(t.shard)
    shared = {k for k, v in users.items() if len(v) > 1}
    out = []
    for t in tasks:
        items = tuple(replace(it, share_gt=True) if (t.source, it.gt, it.tile) in shared and not it.share_gt
                      else it for it in t.items)  # only the shared ones change (replace is slow)
        out.append(replace(t, items=items))
    return out


def clean_tasks(tasks: Iterable[ShardTask], shard_size: int) -> list[ShardTask]:
    """The clean-image shards of an online build: every clean image that a synthetic item
    degrades, once per (partition, source), sorted by path and cut into shards of `shard_size`."""
    images: dict[tuple[str, str, str], set[str]] = {}
    for t in tasks:
        for it in t.items:
            if not it.lq:
                images.setdefault((t.partition, t.source, t.root), set()).add(it.gt)
    out = []
    for (partition, source, root), paths in sorted(images.items()):
        ordered = sorted(paths)
        for index, start in enumerate(range(0, len(ordered), shard_size)):
            items = tuple(Item("", source, partition, "", "", False, gt) for gt in ordered[start:start + shard_size])
            out.append(ShardTask(manifest.clean_shard_relpath(partition, source, index), partition, "", source, root,
                                 items, kind="clean"))
    return out


def chunk_stream(
    items: Iterable[Item], *, partition: str, code: str, source: str, root: str, shard_size: int
) -> list[ShardTask]:
    """Sort one stream's items (GT first, so variants of an image share one decode) and cut it
    into shards of `shard_size` items."""
    ordered = sorted(items, key=lambda it: (it.gt, it.tile or (), it.variant, it.lq, it.level))
    tasks = []
    for index, start in enumerate(range(0, len(ordered), shard_size)):
        tasks.append(ShardTask(
            manifest.shard_relpath(partition, code, source, index), partition, code, source, root,
            tuple(ordered[start:start + shard_size]),
        ))
    return tasks


class _LRU:
    """A small per-process cache bounded by bytes, for decoded images and encoded GTs, so the
    variants, types and LQs that share a clean image decode and encode it once per process."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self.bytes = 0

    def get(self, ident: tuple) -> Any:
        hit = self.items.get(ident)
        if hit is None:
            return None
        self.items.move_to_end(ident)
        return hit[0]

    def put(self, ident: tuple, value: Any, size: int) -> None:
        if size > self.max_bytes or ident in self.items:
            return
        self.items[ident] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, old) = self.items.popitem(last=False)
            self.bytes -= old


_DECODED = _LRU(256 * 2**20)
_ENCODED_GT = _LRU(64 * 2**20)


class _Reject(Exception):
    """Rejected inputs: one row per file (path, reason, detail, stage)."""

    def __init__(self, *rows: tuple[str, str, str, str]):
        super().__init__("; ".join(f"{p}: {r}: {d}" for p, r, d, _ in rows))
        self.rows = [{"path": p, "reason": r, "detail": d, "stage": st} for p, r, d, st in rows]

    def with_partner(self, partner: str, role: str, relpath: str) -> "_Reject":
        """The same rejects plus the pair's other file, which cannot ship without this one."""
        first = self.rows[0]
        extra = (partner, "partner_rejected", f"its {role} {relpath} was rejected ({first['reason']})", first["stage"])
        return _Reject(*[(r["path"], r["reason"], r["detail"], r["stage"]) for r in self.rows], extra)


@dataclass
class _Input:
    """One source file, read and checked."""

    relpath: str
    data: bytes
    passthrough: codec.PassThrough | None  # an 8-bit RGB PNG that can ship as it is
    ident: tuple  # the decode-cache key of these bytes (see _stat_ident)


def _stat_ident(path: Path, st: os.stat_result) -> tuple:
    """A cheap decode-cache key for a file: its path and what a rewrite or chmod changes."""
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ShardWorker:
    """Writes one shard; never raises unless `strict` (then the first bad input raises, naming the
    file and the reason). Picklable, so any executor can ship it to a process."""

    def __init__(self, config: WorkerConfig):
        self.config = config

    def __call__(self, task: ShardTask) -> TaskResult:
        t0 = time.perf_counter()
        try:
            with codec.opencv_threads(1):  # one task per core; the caller's own setting is restored after
                count, size, rejects = self._write(task)
        except Exception as e:  # noqa: BLE001 - reported, retried, or re-raised in strict mode
            if self.config.strict:
                raise
            return TaskResult(task.shard, False, seconds=time.perf_counter() - t0, error=f"{type(e).__name__}: {e}")
        return TaskResult(task.shard, True, count, size, rejects, time.perf_counter() - t0, items=len(task.items))

    # --- one shard -------------------------------------------------------------------------------

    def _write(self, task: ShardTask) -> tuple[int, int, int]:
        out = Path(self.config.out)
        rows: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        with ShardTarWriter(out / task.shard) as tar:
            for item in task.items:
                if task.kind == "clean":
                    row = self._clean(tar, task, item, rejects)
                    if row is not None:
                        rows.append(row)
                    continue
                for sample in self._samples(task, item, rejects):
                    rows.append(self._add(tar, task, sample, len(rows)))
                    crashpoint("mid_shard")
        crashpoint("after_shard_rename")
        if rejects:
            manifest.write_parquet(manifest.table(rejects, REJECTS_SCHEMA), part_path(out, task.shard, ".rejects"))
        shard_meta = {"shard": task.shard, "count": str(len(rows)), "bytes": str(tar.size), "sha256": tar.sha256,
                      "kind": task.kind}
        schema = manifest.CLEAN_SCHEMA if task.kind == "clean" else SAMPLES_SCHEMA
        manifest.write_parquet(manifest.table(rows, schema), part_path(out, task.shard), shard_meta)
        crashpoint("after_part")
        return len(rows), tar.size, len(rejects)

    def _add(self, tar: ShardTarWriter, task: ShardTask, sample: tuple, index: int) -> dict[str, Any]:
        """Write one sample's members; an online sample (no LQ / GT bytes) has only cls and json,
        its image members are recorded with offset and size 0."""
        label, lq_bytes, gt_bytes = sample
        online = lq_bytes is None
        members = {"cls": str(label.class_id).encode(), "gt.png": gt_bytes, "json": label.to_json_bytes(), "lq.png": lq_bytes}
        row: dict[str, Any] = dict(label.__dict__)
        for name in FIELDS:
            data = members[name]
            short = name.split(".")[0]
            if data is None:
                row[f"{short}_offset"] = row[f"{short}_size"] = 0
                continue
            row[f"{short}_offset"] = tar.add(f"{label.key}.{name}", data)
            row[f"{short}_size"] = len(data)
        row.update(shard=task.shard, index=index, online=online,
                   lq_sha256="" if online else hashlib.sha256(lq_bytes).hexdigest(),
                   gt_sha256="" if online else hashlib.sha256(gt_bytes).hexdigest(),
                   clean_key=manifest.clean_key(task.source, label.source_gt) if online else "")
        return row

    def _clean(self, tar: ShardTarWriter, task: ShardTask, item: Item, rejects: list[dict[str, Any]]) -> dict[str, Any] | None:
        """One clean image of an online build: `<key>.json` (its record) and `<key>.png` (the image,
        whole: the file itself when it is an 8-bit RGB PNG, else encoded once)."""
        try:
            decoded, _ = self._decoded_gt(task.root, item.gt)
        except _Reject as r:
            if self.config.strict:
                first = r.rows[0]
                raise ValueError(f"{Path(task.root) / first['path']}: {first['reason']}: {first['detail']}") from None
            for row in r.rows:
                row = {"source": task.source, "type": "", **row}
                if row not in rejects:
                    rejects.append(row)
            return None
        png = decoded.raw if decoded.passthrough else codec.encode_png(decoded.pixels, self.config.png_level)
        key = manifest.clean_key(task.source, item.gt)
        w, h = decoded.size
        record = {"key": key, "source": task.source, "partition": task.partition, "path": item.gt, "width": w,
                  "height": h, "source_format": decoded.source_format,
                  "conversions": manifest.canonical_json(list(decoded.conversions))}
        blob = manifest.canonical_json(record).encode("utf-8")
        json_offset = tar.add(f"{key}.json", blob)
        png_offset = tar.add(f"{key}.png", png)
        return {**record, "shard": task.shard, "json_offset": json_offset, "json_size": len(blob),
                "png_offset": png_offset, "png_size": len(png), "sha256": hashlib.sha256(png).hexdigest()}

    def _samples(self, task: ShardTask, item: Item, rejects: list[dict[str, Any]]) -> Iterator[tuple]:
        """The item's samples; rejects go to `rejects` (one row per file and reason), or raise in
        strict mode naming the file."""
        make = self._captured if item.lq else self._synthetic
        try:
            yield from make(task, item)
        except _Reject as r:
            if self.config.strict:
                first = r.rows[0]
                raise ValueError(f"{Path(task.root) / first['path']}: {first['reason']}: {first['detail']}") from None
            for row in r.rows:
                row = {"source": task.source, "type": task.code, **row}
                if row not in rejects:
                    rejects.append(row)

    # --- inputs ------------------------------------------------------------------------------------

    def _read(self, root: str, relpath: str) -> _Input:
        path = Path(root) / relpath
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError as e:
            raise _Reject((relpath, "unreadable", f"{type(e).__name__}: {e.strerror or e}", "read")) from None
        if not data:
            raise _Reject((relpath, "empty_file", "the file has zero bytes", "read"))
        try:
            return _Input(relpath, data, codec.check_passthrough_png(data), _stat_ident(path, st))
        except codec.CodecError as e:
            raise _Reject((relpath, e.reason, e.detail, "decode")) from None

    def _decoded_gt(self, root: str, relpath: str) -> tuple[codec.Decoded, tuple]:
        """The decoded file and its content ident, from the process cache when its stat is
        unchanged (no read); else read, checked and decoded as `_read` and `_decode` do (so bad
        files reject the same)."""
        path = Path(root) / relpath
        try:
            ident = _stat_ident(path, path.stat())
            hit = _DECODED.get(ident)
        except OSError:
            hit = None  # let the read report it
        if hit is not None:
            return hit, ident
        inp = self._read(root, relpath)
        return self._decode(inp, cache=True), inp.ident

    def _decode(self, inp: _Input, cache: bool) -> codec.Decoded:
        ident = inp.ident
        hit = _DECODED.get(ident) if cache else None
        if hit is not None:
            return hit
        try:
            decoded = codec.decode(inp.data)
        except codec.CodecError as e:
            raise _Reject((inp.relpath, e.reason, e.detail, "decode")) from None
        if cache:
            _DECODED.put(ident, decoded, decoded.pixels.nbytes + len(decoded.raw))
        return decoded

    def _encoded(self, item: Item, decoded: codec.Decoded, tile, gt_ident: tuple | None = None) -> bytes:
        """Shipped bytes of one side: the file itself (8-bit RGB PNG, whole), else one PNG
        encoding. A GT's encodings (`gt_ident`: the content ident of its file, see _stat_ident)
        are memoised in the process and, when other tasks share the GT, in an on-disk cache (the
        same bytes either way). Both caches are keyed by what identifies the file's content, never
        by its name alone: a file rewritten between builds, or another file under the same name,
        is encoded anew."""
        if decoded.passthrough and tile is None:
            return decoded.raw
        pixels = codec.crop(decoded.pixels, tile)
        if gt_ident is None:
            return codec.encode_png(pixels, self.config.png_level)
        ident = (*gt_ident, manifest.format_tile(tile), self.config.png_level)
        hit = _ENCODED_GT.get(ident)
        if hit is not None:
            return hit
        path = None
        if item.share_gt:
            digest = hashlib.sha256(repr(ident).encode()).hexdigest()
            path = Path(self.config.out) / CACHE_DIR / "gt" / f"{digest}.png"
            if path.is_file():
                data = path.read_bytes()
                _ENCODED_GT.put(ident, data, len(data))
                return data
        data = codec.encode_png(pixels, self.config.png_level)
        if path is not None:
            atomic.write_bytes(path, data, durable=False)  # a cache: complete or absent, never torn
        _ENCODED_GT.put(ident, data, len(data))
        return data

    # --- the two kinds of item -----------------------------------------------------------------------

    def _tiles(self, item: Item, width: int, height: int) -> list:
        return [item.tile] if item.tile else tile_grid(width, height, item.tile_size)

    def _synthetic(self, task: ShardTask, item: Item) -> Iterator[tuple]:
        """The item's samples: the degraded LQ and the GT of each tile; in an online build only the
        label (the loader makes the pixels from the clean image and the label's seed and level)."""
        gt_dec, gt_ident = self._decoded_gt(task.root, item.gt)
        conversions = [f"gt:{c}" for c in gt_dec.conversions]
        override = self.config.overrides.get(item.code, {}).get(item.level)
        w, h = gt_dec.size
        for tile in self._tiles(item, w, h):
            tile_s = manifest.format_tile(tile)
            key = item.key(tile_s)
            seed = sample_seed(self.config.seed, key)
            tw, th = (tile[2], tile[3]) if tile else (w, h)
            gt_bytes = lq_bytes = None
            if not self.config.online:
                gt_bytes = self._encoded(item, gt_dec, tile, gt_ident)
            try:
                params = degrade.sample(item.code, np.random.default_rng(seed), item.level, override)
                if not self.config.online:
                    lq_bytes = codec.encode_png(degrade.apply(item.code, codec.crop(gt_dec.pixels, tile), params),
                                                self.config.png_level)
            except Exception as e:  # noqa: BLE001 - a degradation bug must not lose the input silently
                raise _Reject((item.gt, "degrade_failed", f"{item.code}/{item.level} {tile_s}: {type(e).__name__}: {e}", "degrade")) from None
            yield self._label(item, key, tile_s, tw, th, seed, params, "synthetic", gt_dec.source_format, conversions), lq_bytes, gt_bytes

    def _captured(self, task: ShardTask, item: Item) -> Iterator[tuple]:
        try:
            gt = self._read(task.root, item.gt)
        except _Reject as r:
            raise r.with_partner(item.lq, "GT", item.gt) from None
        try:
            lq = self._read(task.root, item.lq)
        except _Reject as r:
            raise r.with_partner(item.gt, "LQ", item.lq) from None
        fits = item.tile is None and (item.tile_size <= 0 or (gt.passthrough is not None and max(gt.passthrough.width, gt.passthrough.height) <= item.tile_size))
        if gt.passthrough and lq.passthrough and fits:  # ship both files as they are, no decode
            self._check_sizes(item, (lq.passthrough.width, lq.passthrough.height), (gt.passthrough.width, gt.passthrough.height))
            w, h = gt.passthrough.width, gt.passthrough.height
            yield self._label(item, item.key(""), "", w, h, -1, {}, "png", "png", []), lq.data, gt.data
            return
        try:
            gt_dec = self._decode(gt, cache=True)
        except _Reject as r:
            raise r.with_partner(item.lq, "GT", item.gt) from None
        try:
            lq_dec = self._decode(lq, cache=False)
        except _Reject as r:
            raise r.with_partner(item.gt, "LQ", item.lq) from None
        self._check_sizes(item, lq_dec.size, gt_dec.size)
        conversions = [f"lq:{c}" for c in lq_dec.conversions] + [f"gt:{c}" for c in gt_dec.conversions]
        w, h = gt_dec.size
        for tile in self._tiles(item, w, h):
            tile_s = manifest.format_tile(tile)
            tw, th = (tile[2], tile[3]) if tile else (w, h)
            label = self._label(item, item.key(tile_s), tile_s, tw, th, -1, {}, lq_dec.source_format, gt_dec.source_format, conversions)
            yield label, self._encoded(item, lq_dec, tile), self._encoded(item, gt_dec, tile, gt.ident)

    @staticmethod
    def _check_sizes(item: Item, lq_size: tuple[int, int], gt_size: tuple[int, int]) -> None:
        if lq_size != gt_size:
            detail = f"LQ {lq_size[0]}x{lq_size[1]} vs GT {gt_size[0]}x{gt_size[1]}"
            raise _Reject((item.lq, "size_mismatch", detail, "decode"), (item.gt, "size_mismatch", detail, "decode"))

    @staticmethod
    def _label(item: Item, key: str, tile: str, width: int, height: int, seed: int, params: dict,
               lq_format: str, gt_format: str, conversions: list[str]) -> manifest.Label:
        return manifest.make_label(
            key=key, code=item.code, partition=item.partition, source=item.source, variant=item.variant,
            real=item.real, level=item.level, params=params, seed=seed, width=width, height=height,
            lq_source_format=lq_format, gt_source_format=gt_format, conversions=conversions, tile=tile,
            source_lq=item.lq, source_gt=item.gt,
        )
