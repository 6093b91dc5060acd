"""The streaming loader: UIR shards in, mixed, aligned, augmented batches out.

One stream per (type, source) of the selected preset. Each reader (rank x DataLoader worker) owns
a disjoint portion of every stream (whole shards when the stream has at least one per reader, else
every n-th sample), walks it in a seeded order, pass after pass, and a seeded quota scheduler
picks which stream gives each draw (weights = ratio x source pairs). Samples are read by the byte
offsets in samples.parquet (one ranged read each, from a folder, s3:// or hf://), or, for bare
shard lists and `pipe:` URLs, streamed from whole tars.

Everything a reader does in an epoch is a function of (seed, epoch, rank, worker), so the loader's
state is just (epoch, batches consumed, faults met): a resumed loader fast-forwards each worker
to where it was and yields exactly the batches an uninterrupted one would have. DataLoader hands
out batches round-robin over workers; a resumed loader rotates its workers' roles to match.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from training.augment import PairedCrop
from training.sampling import QuotaScheduler, portion, split_shards
from training.urls import Root, open_stream
from uir25m import manifest, reader, subsets, taxonomy

log = logging.getLogger("uir.data")

_COLUMNS = ["key", "partition", "type", "source", "source_lq", "source_gt", "variant", "shard",
            "gt_offset", "gt_size", "json_offset", "json_size", "lq_offset", "lq_size"]


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


class StrictError(OSError):
    """A bad shard or sample in strict mode."""


class FaultBudgetError(RuntimeError):
    """A stream whose samples keep failing: the data is damaged or unreachable."""


FAULT_BUDGET = 64  # consecutive failed samples of one stream that end the run


@dataclass
class Stream:
    """One (type, source) stream: its shards and, when the manifest is known, its samples."""

    code: str
    source: str
    ratio: float
    src_pairs: float  # source pairs (tiles of one pair count once); the shard count for bare shard lists
    shards: list[str]
    shard_id: np.ndarray | None = None  # per sample: index into `shards` (indexed mode)
    keys: np.ndarray | None = None
    spans: np.ndarray | None = None  # per sample: gt_offset, gt_size, json_offset, json_size, lq_offset, lq_size

    @property
    def samples(self) -> int | None:
        return None if self.shard_id is None else len(self.shard_id)


@dataclass
class Catalog:
    """The streams of one loader. `root` set: indexed (ranged reads); None: sequential tar streams."""

    streams: list[Stream]
    root: Root | None
    endpoint_url: str | None = None

    @property
    def weights(self) -> np.ndarray:
        return np.array([s.ratio * s.src_pairs for s in self.streams], dtype=np.float64)

    def read_sample(self, stream: Stream, pos: int) -> tuple[bytes, bytes, bytes]:
        """The GT image, label JSON and LQ image bytes of sample `pos` of an indexed stream, in one
        ranged read (the members lie in that order in the shard)."""
        go, gs, jo, js, lo, ls = (int(v) for v in stream.spans[pos])
        if min(go, gs, js, ls) < 0 or not (go + gs <= jo and jo + js <= lo):
            raise reader.DatasetError("bad_span", f"members at {go}+{gs}, {jo}+{js}, {lo}+{ls}: not gt, json, lq in order")
        region = self.root.read(stream.shards[stream.shard_id[pos]], go, lo + ls - go)
        return region[:gs], region[jo - go:jo - go + js], region[lo - go:lo - go + ls]

    def shares(self) -> dict[str, float]:
        """Effective share of draws per type (as `uir-train shares` reports it)."""
        return subsets.shares({(s.code, s.source): float(w) for s, w in zip(self.streams, self.weights)})


def _select(preset: subsets.Preset, code: str, source: str) -> float | None:
    sel = preset.selection(code, source)
    return None if sel is None else sel.ratio


def catalog_from_dataset(root_url: str, preset: subsets.Preset, partition: str, endpoint_url: str | None = None) -> Catalog:
    """The streams of a dataset folder or published copy, from its samples.parquet."""
    root = Root(root_url, endpoint_url)
    try:
        table = pq.read_table(io.BytesIO(root.read_all(manifest.SAMPLES)), columns=_COLUMNS)
    except (OSError, FileNotFoundError) as e:
        raise FileNotFoundError(f"{root_url}: cannot read {manifest.SAMPLES} ({e}); is this a UIR dataset?") from None
    reader.check_column(table.column("shard"), f"{root_url}/{manifest.SAMPLES}", shards=True)
    cols = table.to_pydict()
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (p, t, s) in enumerate(zip(cols["partition"], cols["type"], cols["source"])):
        if p == partition:
            groups[(t, s)].append(i)
    spans_all = np.stack([np.asarray(cols[c], dtype=np.int64) for c in _COLUMNS[8:]], axis=1)
    streams = []
    for (code, source), rows in sorted(groups.items(), key=lambda kv: (taxonomy.get(kv[0][0]).class_id, kv[0][1])):
        ratio = _select(preset, code, source)
        if ratio is None:
            continue
        idx = np.asarray(rows)
        shard_names = [cols["shard"][i] for i in rows]
        shards = sorted(set(shard_names))
        lookup = {s: j for j, s in enumerate(shards)}
        pairs = len({(cols["source_lq"][i], cols["source_gt"][i], cols["variant"][i]) for i in rows})
        streams.append(Stream(code, source, ratio, float(pairs), shards,
                              np.asarray([lookup[s] for s in shard_names], dtype=np.int32),
                              np.asarray([cols["key"][i] for i in rows], dtype=object), spans_all[idx]))
    if not streams:
        raise ValueError(f"{root_url}: the {partition} partition holds none of preset {preset.name!r}'s (type, source) pairs")
    return Catalog(streams, root, endpoint_url)


def expand_urls(source: str | Sequence[str]) -> list[str]:
    """A shard list: a sequence, or one string with brace ranges (`x-{000000..000009}.tar`)."""
    if isinstance(source, str):
        import braceexpand

        return list(braceexpand.braceexpand(source))
    return list(source)


def catalog_from_shards(urls: Sequence[str], preset: subsets.Preset, partition: str, endpoint_url: str | None = None) -> Catalog:
    """Streams from bare shard URLs, told apart by their `<code>-<source>-NNNNNN.tar` names. Without
    a manifest the counts are unknown: weights use the number of shards (a warning says so)."""
    by_stream: dict[tuple[str, str], list[str]] = defaultdict(list)
    for url in urls:
        parts = manifest.shard_parts(url.split()[-1] if url.startswith("pipe:") else url)
        if parts is None:
            raise ValueError(f"{url}: not a UIR shard name (<code>-<source>-NNNNNN.tar)")
        shard_partition, code, source = parts
        if shard_partition and shard_partition != partition:
            continue
        taxonomy.get(code)
        by_stream[(code, source)].append(url)
    streams = [Stream(c, s, r, float(len(u)), sorted(u)) for (c, s), u in sorted(by_stream.items())
               if (r := _select(preset, c, s)) is not None]
    if not streams:
        raise ValueError(f"none of the shards belong to preset {preset.name!r}")
    log.warning("loading bare shards without samples.parquet: repeat-sampling weights use shard counts, not pair counts")
    return Catalog(streams, None, endpoint_url)


# --- reading one sample ------------------------------------------------------------------------

def _decode(data: bytes, where: str = "image") -> np.ndarray:
    """BGR pixels; the size is held to the pixel limit before the image is inflated."""
    return reader.decode_bgr(data, where)


class _IndexedCursor:
    """A reader's walk over its portion of one stream: a seeded permutation per pass."""

    def __init__(self, positions: np.ndarray, seed: int):
        self.positions = positions
        self.seed = seed
        self.pass_no, self.i = 0, 0
        self._perm = np.random.default_rng(_seed(seed, 0)).permutation(len(positions))

    def next(self) -> tuple[int, int]:
        """(pass, sample position in the stream)."""
        if self.i == len(self.positions):
            self.pass_no += 1
            self.i = 0
            self._perm = np.random.default_rng(_seed(self.seed, self.pass_no)).permutation(len(self.positions))
        pos = int(self.positions[self._perm[self.i]])
        self.i += 1
        return self.pass_no, pos


class _SequentialCursor:
    """A reader's walk over its shards of one stream, streamed from start to end, pass after pass."""

    def __init__(self, stream: Stream, reader: int, readers: int, seed: int, shared_seed: int, endpoint_url: str | None,
                 on_fault):
        self.stream, self.reader, self.readers, self.seed = stream, reader, readers, seed
        self.shared_seed = shared_seed  # the same on every reader: who owns which shard, the sample walk
        self.endpoint_url, self.on_fault = endpoint_url, on_fault
        self.pass_no = -1
        self._it: Iterator | None = None

    def _pass(self) -> Iterator[tuple[str, dict[str, bytes]]]:
        n = len(self.stream.shards)
        by_shard = split_shards(n, self.readers)
        if by_shard:  # whole shards, dealt out alike on every reader; this reader's own walk over its own
            owned = portion(np.arange(n), n, self.reader, self.readers, _seed(self.shared_seed, "deal"))
            order = np.random.default_rng(_seed(self.seed, self.pass_no)).permutation(owned)
        else:  # every reader walks all shards in the same order and keeps every readers-th sample
            order = np.random.default_rng(_seed(self.shared_seed, "walk", self.pass_no)).permutation(n)
        mine = [self.stream.shards[j] for j in order]
        count = 0
        for url in mine:
            try:
                with open_stream(url, self.endpoint_url) as f:
                    for key, fields in reader.iter_tar(f, url):
                        if by_shard or count % self.readers == self.reader:
                            yield key, fields
                        count += 1
            except (OSError, ValueError) as e:  # DatasetError (a bad tar or member) is a ValueError
                self.on_fault(url, f"{type(e).__name__}: {e}")

    def next(self) -> tuple[str, dict[str, bytes]]:
        for _ in range(2):
            if self._it is not None:
                item = next(self._it, None)
                if item is not None:
                    return item
            self.pass_no += 1
            self._it = self._pass()
            item = next(self._it, None)
            if item is not None:
                return item
        raise OSError(f"stream {self.stream.code}/{self.stream.source}: no readable sample for this reader")


# --- the dataset ---------------------------------------------------------------------------------

@dataclass
class _Plan:
    """What one rank does in one epoch: batches per logical worker."""

    batches: list[int]


class UIRDataset(IterableDataset):
    """Yields augmented samples; configure `epoch`, `resume` and `faults` before iterating."""

    def __init__(self, catalog: Catalog, *, batch_size: int, crop: int, flips: bool, seed: int, rank: int,
                 world_size: int, num_workers: int, strict: bool, fault_budget: int = FAULT_BUDGET):
        self.catalog = catalog
        self.fault_budget = fault_budget
        self.batch_size, self.crop, self.flips, self.seed = batch_size, crop, flips, seed
        self.rank, self.world_size, self.workers = rank, world_size, max(1, num_workers)
        self.strict = strict
        self.epoch = 0
        self.skip: list[int] = [0] * self.workers  # batches each logical worker already produced
        self.rotation = 0  # physical worker w plays logical worker (w + rotation) % workers
        self.known_faults: set[tuple] = set()

    # -- the epoch's shape (computed identically in the main process and in workers) --
    def epoch_batches(self) -> int:
        """Batches per rank per epoch: an epoch is sum(ratio x source pairs) draws over all ranks."""
        return int(self.catalog.weights.sum() // self.world_size // self.batch_size)

    def plan(self) -> _Plan:
        b = self.epoch_batches()
        return _Plan([b // self.workers + (w < b % self.workers) for w in range(self.workers)])

    def _portions(self, reader: int, readers: int) -> tuple[list[np.ndarray | None], np.ndarray]:
        ports, weights = [], []
        for k, s in enumerate(self.catalog.streams):
            if s.shard_id is None:  # sequential: the cursor deals shards or samples itself
                ports.append(None)
                weights.append(s.ratio * s.src_pairs / readers)
                continue
            p = portion(s.shard_id, len(s.shards), reader, readers, _seed(self.seed, "deal", k))
            ports.append(p)
            weights.append(s.ratio * s.src_pairs * len(p) / max(1, s.samples))
        w = np.asarray(weights)
        if w.sum() <= 0:  # a tiny dataset with fewer samples than readers: read everything
            log.warning("reader %d of %d owns no sample; it reads the whole data", reader, readers)
            return self._portions(0, 1)
        return ports, w

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        physical = info.id if info is not None else 0
        logical = (physical + self.rotation) % self.workers
        readers = self.world_size * self.workers
        reader = self.rank * self.workers + logical
        total = self.plan().batches[logical]
        skip = self.skip[logical]
        if info is not None:  # a worker process of ours: one OpenCV thread each (never the caller's process)
            cv2.setNumThreads(1)
        yield from self._run(reader, readers, total, skip)

    def _run(self, reader: int, readers: int, total_batches: int, skip_batches: int) -> Iterator[dict[str, Any]]:
        ports, weights = self._portions(reader, readers)
        base = _seed(self.seed, self.epoch, reader)
        sched = QuotaScheduler(weights, base)
        faults: list[tuple] = []

        def fault(where: str, reason: str, ident: tuple) -> None:
            if self.strict:
                raise StrictError(f"{where}: {reason}")
            log.warning("skipping %s: %s", where, reason)
            faults.append(ident + (reason,))

        cursors: list[Any] = []
        for k, (s, p) in enumerate(zip(self.catalog.streams, ports)):
            if p is None:
                cursors.append(_SequentialCursor(s, reader, readers, _seed(base, "stream", k),
                                                 _seed(self.seed, self.epoch, "stream", k), self.catalog.endpoint_url,
                                                 lambda url, reason, k=k: fault(url, reason, ("shard", self.epoch, reader, k, url))))
            else:
                cursors.append(_IndexedCursor(p, _seed(base, "stream", k)))
        crop = PairedCrop(self.crop, self.flips)
        draw = 0
        for b in range(total_batches):
            for _ in range(self.batch_size):
                k = sched.next()
                fast = b < skip_batches
                sample = self._take(k, cursors[k], reader, fast, fault)
                if fast:
                    faults.clear()  # met and logged before the interruption
                else:
                    sample = self._finish(sample, crop, _seed(base, "aug", draw))
                    sample["faults"], faults = faults, []
                    yield sample
                draw += 1

    def _take(self, k: int, cursor, reader_id: int, fast: bool, fault) -> tuple:
        """The next good sample of stream k, decoded: (key, label, lq, gt). A sample that cannot
        be used (a failed or short read, a bad span, an image that does not decode or is over the
        pixel limit, LQ and GT of different sizes) is a counted fault and the stream's next sample
        stands in; `fault_budget` failures in a row end the run (the data is damaged or
        unreachable: spinning on it would never give a batch). When fast-forwarding, nothing is
        decoded and the faults met the first time are skipped again, so the walk lands where it was."""
        s = self.catalog.streams[k]
        failures = 0
        while True:
            if failures >= self.fault_budget:
                raise FaultBudgetError(
                    f"stream {s.code}/{s.source}: {failures} samples in a row failed (the last: {last}); the data is "
                    f"damaged or unreachable. Check it with `uir-build verify`, or raise data.fault_budget")
            if isinstance(cursor, _SequentialCursor):
                key, fields = cursor.next()
                ident = ("sample", self.epoch, reader_id, k, key)
                where = f"{s.code}/{s.source} sample {key}"
                if {"gt.png", "lq.png", "json"} - fields.keys():
                    fault(where, "missing members", ident)
                    failures, last = failures + 1, f"{where}: missing members"
                    continue
                raw = fields["gt.png"], fields["json"], fields["lq.png"]
            else:
                pass_no, pos = cursor.next()
                key = s.keys[pos]
                ident = ("sample", self.epoch, reader_id, k, pass_no, pos)
                shard = s.shards[s.shard_id[pos]]
                where = f"{shard} sample {key}"
                if fast:
                    raw = None
                else:
                    try:
                        raw = self.catalog.read_sample(s, pos)
                    except (OSError, reader.DatasetError) as e:
                        fault(where, str(e), ident)
                        failures, last = failures + 1, f"{where}: {e}"
                        continue
            if fast:
                if ident in self.known_faults:
                    continue
                return (key,)
            try:
                gt_bytes, json_bytes, lq_bytes = raw
                lq, gt = _decode(lq_bytes, f"{where} lq"), _decode(gt_bytes, f"{where} gt")
                if lq.shape != gt.shape:
                    raise reader.DatasetError("size_mismatch", f"LQ {lq.shape[1]}x{lq.shape[0]} and GT "
                                                               f"{gt.shape[1]}x{gt.shape[0]} differ in size")
                return key, json.loads(json_bytes), lq, gt
            except (ValueError, cv2.error) as e:  # DatasetError is a ValueError; a bad label too
                fault(where, f"corrupt: {e}", ident)
                failures, last = failures + 1, f"{where}: corrupt: {e}"

    def _finish(self, sample: tuple, crop: PairedCrop, seed: int) -> dict[str, Any]:
        key, label, lq, gt = sample
        lq, gt = crop(lq, gt, seed)
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a[..., ::-1].transpose(2, 0, 1))).float().div_(255.0)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "class_id": label["class_id"], "key": str(key),
                "type": label["type"], "source": label["source"], "label": label}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images, keep labels as lists; `faults` gathers what readers skipped."""
    return {
        "lq": torch.stack([s["lq"] for s in samples]), "gt": torch.stack([s["gt"] for s in samples]),
        "class_id": torch.tensor([s["class_id"] for s in samples], dtype=torch.long),
        "key": [s["key"] for s in samples], "type": [s["type"] for s in samples],
        "source": [s["source"] for s in samples], "label": [s["label"] for s in samples],
        "faults": [f for s in samples for f in s["faults"]],
    }


def _round_robin(batches: list[int], consumed: int) -> tuple[list[int], int]:
    """How many batches each worker had produced after `consumed` in DataLoader's order, and which
    worker produces the next one."""
    produced = [0] * len(batches)
    w = 0
    for _ in range(consumed):
        while produced[w] >= batches[w]:
            w = (w + 1) % len(batches)
        produced[w] += 1
        w = (w + 1) % len(batches)
    while sum(produced) < sum(batches) and produced[w] >= batches[w]:
        w = (w + 1) % len(batches)
    return produced, w


class UIRDataLoader(DataLoader):
    """A DataLoader that knows where it is: `state_dict()` / `load_state_dict()` for checkpoints,
    `set_epoch()`, and counts of what it skipped (`faults`)."""

    def __init__(self, dataset: UIRDataset, *, overlap_epochs: bool = True, **kwargs: Any):
        super().__init__(dataset, batch_size=dataset.batch_size, collate_fn=collate, **kwargs)
        self.epoch = 0
        self.consumed = 0
        self.fault_log: list[tuple] = []
        self.faults: Counter[str] = Counter()
        self.overlap_epochs = overlap_epochs
        self._next: tuple[int, Any] | None = None  # (epoch, its iterator, workers already started)

    def __len__(self) -> int:
        return self.dataset.epoch_batches()

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.consumed = epoch, 0
        self._next = None

    def _fingerprint(self) -> str:
        d = self.dataset
        ident = (d.seed, d.batch_size, d.crop, d.flips, d.world_size, d.workers, d.rank,
                 [(s.code, s.source, s.ratio, s.src_pairs, len(s.shards), s.samples) for s in d.catalog.streams])
        return hashlib.sha256(repr(ident).encode()).hexdigest()[:16]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "faults": [list(f) for f in self.fault_log],
                "fingerprint": self._fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("fingerprint") != self._fingerprint():
            raise ValueError("the loader's data, preset, seed, batch size, crop, workers or ranks differ from the "
                             "checkpoint's: its position cannot be restored")
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
        self.fault_log = [tuple(f) for f in state.get("faults", [])]
        self._next = None

    def __iter__(self):
        if self.consumed >= len(self):
            self.epoch, self.consumed = self.epoch + 1, 0
            return iter(())
        return self._epoch()

    def _epoch(self):
        ahead = self._ahead()
        if self._next is not None and self._next[0] == self.epoch and self.consumed == 0:
            batches = self._next[1]
        else:
            batches = self._start(self.epoch, self.consumed)
        self._next = None
        for batch in batches:
            self.consumed += 1
            for f in batch["faults"]:
                self.fault_log.append(tuple(f))
                self.faults[f[-1].split(":")[0]] += 1
            if ahead and len(self) - self.consumed == ahead:
                self._next = (self.epoch + 1, self._start(self.epoch + 1, 0))
            yield batch
        self.epoch, self.consumed = self.epoch + 1, 0

    def _ahead(self) -> int:
        """Batches before the end of an epoch at which the next epoch's workers are started, so
        their start-up (a second or more) overlaps this epoch's last steps instead of stalling the
        first step of the next: the batches the workers keep prefetched, at least 8 (start-up takes
        a few steps' time); 0 = no overlap (no workers, or an epoch of one batch)."""
        if not self.overlap_epochs or self.num_workers == 0:
            return 0
        return min(len(self) - 1, max(8, self.num_workers * (self.prefetch_factor or 2)))

    def _start(self, epoch: int, consumed: int):
        """An iterator over `epoch`'s batches from `consumed` on; workers fork (with their copy of
        the dataset's settings) here."""
        d: UIRDataset = self.dataset
        d.epoch = epoch
        produced, nxt = _round_robin(d.plan().batches, consumed)
        d.skip, d.rotation = produced, nxt if self.num_workers > 0 else 0
        d.known_faults = {f[:-1] for f in self.fault_log if f[1] == epoch}
        return self._workers_started()

    def _workers_started(self):
        """super().__iter__(), forking the workers while OpenCV runs single-threaded: a worker
        forked while this process's OpenCV thread pool exists hangs in its first OpenCV call
        (the pool's threads are not copied by fork). The caller's setting is restored after."""
        if self.num_workers == 0:
            return super().__iter__()
        before = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return super().__iter__()
        finally:
            cv2.setNumThreads(before)


def _dist_env(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank = torch.distributed.get_rank() if rank is None else rank
            world_size = torch.distributed.get_world_size() if world_size is None else world_size
        rank = int(os.environ.get("RANK", 0)) if rank is None else rank
        world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return rank, world_size


def preset_for(subset: str | subsets.Preset = "all", types: str | Sequence[str] | None = None) -> subsets.Preset:
    """The (type, source) selection: explicit codes, a preset object or a preset name."""
    if types:
        return subsets.from_codes(types)
    return subset if isinstance(subset, subsets.Preset) else subsets.load(subset)


def make_loader(
    source: str | Sequence[str],
    *,
    subset: str | subsets.Preset = "all",
    types: str | Sequence[str] | None = None,
    ratios: dict[str, float] | None = None,
    partition: str = "train",
    batch_size: int = 16,
    crop: int = 256,
    flips: bool = True,
    num_workers: int = 4,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    strict: bool = False,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    overlap_epochs: bool = True,
    endpoint_url: str | None = None,
    fault_budget: int = FAULT_BUDGET,
) -> UIRDataLoader:
    """A DataLoader over a UIR dataset (a folder, `file://`, `s3://bucket/prefix` or `hf://user/name`
    holding manifests/) or over bare shards (a list or brace pattern of paths or URLs, `pipe:` too).

    Batches: `lq`, `gt` (float32 B x 3 x crop x crop in [0, 1], the same window), `class_id`, `key`,
    `type`, `source`, `label` (the full labels) and `faults` (what was skipped). `subset` is a preset
    name (or Preset); `types` selects codes from any source instead; `ratios` overrides a preset's
    ratios per type. Rank and world size default to torch.distributed or RANK / WORLD_SIZE.
    `overlap_epochs` starts the next epoch's workers while this epoch's last batches are consumed
    (the batches are the same either way; small datasets' epochs then cost no worker start-up).
    """
    for name, value, low in (("batch_size", batch_size, 1), ("crop", crop, 1), ("num_workers", num_workers, 0),
                             ("fault_budget", fault_budget, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, not {value!r}")
    preset = preset_for(subset, types)
    if ratios:
        preset = preset.with_ratios(ratios)
    if partition not in manifest.PARTITIONS:
        raise ValueError(f"partition must be one of {manifest.PARTITIONS}")
    rank, world_size = _dist_env(rank, world_size)
    bare = not isinstance(source, str) or source.endswith(".tar") or source.startswith("pipe:") or "{" in source
    catalog = (catalog_from_shards(expand_urls(source), preset, partition, endpoint_url) if bare
               else catalog_from_dataset(source, preset, partition, endpoint_url))
    dataset = UIRDataset(catalog, batch_size=batch_size, crop=crop, flips=flips, seed=seed, rank=rank,
                         world_size=world_size, num_workers=num_workers, strict=strict, fault_budget=fault_budget)
    if dataset.epoch_batches() < 1:
        raise ValueError(f"an epoch of {catalog.weights.sum():g} draws over {world_size} rank(s) makes no batch of {batch_size}")
    _log_shares(catalog, preset, dataset)
    kwargs: dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin_memory}
    if num_workers > 0 and prefetch_factor:
        kwargs["prefetch_factor"] = prefetch_factor
    return UIRDataLoader(dataset, overlap_epochs=overlap_epochs, **kwargs)


def _log_shares(catalog: Catalog, preset: subsets.Preset, dataset: UIRDataset) -> None:
    shares = catalog.shares()
    lines = [f"repeat sampling, preset {preset.name}: {len(catalog.streams)} streams, epoch = "
             f"{catalog.weights.sum():g} draws = {dataset.epoch_batches()} batches per rank"]
    for code, share in shares.items():
        lines.append(f"  {code:<9} {100 * share:6.2f} % of draws")
    missing = [c for c in preset.codes if c not in shares]
    if missing:
        lines.append(f"  absent from the data: {', '.join(missing)}")
    log.info("\n".join(lines))
