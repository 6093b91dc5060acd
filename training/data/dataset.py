"""The readers' endless streams of augmented samples (a torch IterableDataset).

Each reader (a DataLoader worker, or the main process without workers) runs one endless stream
that goes through epoch boundaries: its workers start once and live as long as the loader. A
seeded quota scheduler picks the stream of every draw (weights = ratio x source pairs x the
reader's share of the stream), the stream's walk gives the sample, and the sample's crop and
flips come from a seed of (seed, reader, draw). DataLoader hands out batches round-robin over
its workers, so logical worker l makes the rank's batches l, l + W, l + 2W, ...; an epoch is just
a count of batches (`epoch_batches`), and the epoch of a worker's j-th batch is
(j x W + l) // epoch_batches.

Everything is a function of the seed and of how many batches came before, so the loader's state
is one number (batches taken since the start, with the faults met): a resumed loader starts its
workers at that position (each fast-forwards its walks by counting, reading nothing, skipping the
faults the first run met) and rotates their roles so DataLoader's first request goes to the
worker that makes the next batch.

A sample that cannot be used (a failed or short read, a bad span, an image that does not decode
or is over the pixel limit, LQ and GT of different sizes) is a counted fault and the stream's next
sample stands in; `fault_budget` failures in a row of one stream end the run with an error. A
fault is recorded as (what, reader, stream, step or shard, kind, where, detail): kind is `read`,
`corrupt`, `missing_members` or `shard`; the leading part identifies it for a resume.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from training.data.augment import PairedCrop
from training.data.online import Synthesiser
from training.data.readers import WINDOW, Layout, SequentialCursor, Walk, decode
from training.data.sampling import QuotaScheduler, derive_seed
from training.data.streams import Catalog
from uir25m import reader as fmt

log = logging.getLogger("uir.data")

FAULT_BUDGET = 64  # consecutive failed samples of one stream that end the run


class StrictError(OSError):
    """A bad shard or sample in strict mode."""


class FaultBudgetError(RuntimeError):
    """A stream whose samples keep failing: the data is damaged or unreachable."""


class UIRDataset(IterableDataset):
    """Endless augmented samples; `start` (batches already taken) and `known_faults` are set by the
    loader before its workers start."""

    def __init__(self, catalog: Catalog, *, batch_size: int, crop: int, flips: bool, seed: int, rank: int,
                 world_size: int, num_workers: int, strict: bool, fault_budget: int = FAULT_BUDGET,
                 local_world_size: int | None = None, window: int = WINDOW, online: str = "fixed"):
        self.catalog = catalog
        self.batch_size, self.crop, self.flips, self.seed = batch_size, crop, flips, seed
        self.rank, self.world_size, self.workers = rank, world_size, max(1, num_workers)
        self.local_world_size = local_world_size or world_size
        self.strict, self.fault_budget, self.window = strict, fault_budget, window
        self.online = online  # how online samples (format 1.2) get their params: fixed | fresh
        self.start = 0  # the rank's batches taken before this run of workers
        self.known_faults: set[tuple] = set()

    def epoch_batches(self) -> int:
        """Batches per rank per epoch: an epoch is sum(ratio x source pairs) draws over all ranks."""
        return int(self.catalog.weights.sum() // self.world_size // self.batch_size)

    def layout(self, worker: int) -> Layout:
        return Layout(self.rank, self.world_size, self.local_world_size, self.workers, worker)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        physical = info.id if info is not None else 0
        logical = (physical + self.start) % self.workers  # the first request goes to physical worker 0
        done = max(0, -(-(self.start - logical) // self.workers))  # this worker's batches before `start`
        if info is not None:  # a worker process of ours: one OpenCV thread (never the caller's process)
            cv2.setNumThreads(1)
        return self._run(self.layout(logical), done)

    def _readers(self, layout: Layout, fault) -> tuple[list[Any], np.ndarray]:
        """One walk (or sequential cursor) per stream, and the scheduler's weights for this reader."""
        walks, weights = [], []
        for k, s in enumerate(self.catalog.streams):
            if s.shard_id is None:  # a bare stream: the cursor deals shards or samples itself
                walks.append(SequentialCursor(
                    s, layout.reader, layout.readers, derive_seed(self.seed, "stream", k, layout.reader),
                    derive_seed(self.seed, "stream", k), self.catalog.endpoint_url,
                    lambda url, detail, k=k: fault(url, "shard", detail, ("shard", layout.reader, k, url))))
                weights.append(s.ratio * s.src_pairs / layout.readers)
                continue
            walk = Walk(s, layout, derive_seed(self.seed, "stream", k), self.window)
            walks.append(walk)
            weights.append(s.ratio * s.src_pairs * walk.per_pass / max(1, s.samples))
        return walks, np.asarray(weights)

    def _run(self, layout: Layout, done: int) -> Iterator[dict[str, Any]]:
        faults: list[tuple] = []

        def fault(where: str, kind: str, detail: str, ident: tuple) -> None:
            if self.strict:
                raise StrictError(f"{where}: {kind}: {detail}")
            log.warning("skipping %s: %s: %s", where, kind, detail)
            faults.append(ident + (kind, where, detail))

        walks, weights = self._readers(layout, fault)
        if weights.sum() <= 0:
            raise ValueError(f"reader {layout.reader} of {layout.readers} owns no sample of any stream: "
                             "the data is smaller than the number of ranks x workers")
        sched = QuotaScheduler(weights, derive_seed(self.seed, "schedule", layout.reader))
        crop = PairedCrop(self.crop, self.flips)
        synth = Synthesiser(self.online, self.seed, self.catalog.online_info.get("overrides"))
        epoch_batches = max(1, self.epoch_batches())
        draw = 0
        while True:
            fast = draw < done * self.batch_size
            k = sched.next()
            epoch = ((draw // self.batch_size) * self.workers + layout.worker) // epoch_batches  # of this draw's batch
            sample = self._take(k, walks[k], layout.reader, fast, fault, synth, epoch)
            if fast:
                faults.clear()  # met and logged before the interruption
            else:
                sample = self._finish(sample, crop, derive_seed(self.seed, "aug", layout.reader, draw))
                sample["faults"], faults = faults, []
                yield sample
            draw += 1

    def _take(self, k: int, walk, reader_id: int, fast: bool, fault, synth: Synthesiser, epoch: int) -> tuple:
        """The next good sample of stream k, decoded (or, online, made): (key, label, lq, gt). When
        fast-forwarding, nothing is read or decoded and the faults met the first time are skipped
        again, so the walk lands where it was."""
        s = self.catalog.streams[k]
        failures, last = 0, ""
        while True:
            if failures >= self.fault_budget:
                raise FaultBudgetError(
                    f"stream {s.code}/{s.source}: {failures} samples in a row failed (the last: {last}); the data is "
                    f"damaged or unreachable. Check it with `uir-build verify`, or raise data.fault_budget")
            if isinstance(walk, SequentialCursor):
                pass_no, key, fields = walk.next()
                ident = ("sample", reader_id, k, pass_no, key)
                where = f"{s.code}/{s.source} sample {key}"
                if fast:
                    if ident in self.known_faults:
                        continue
                    return (key,)
                if {"gt.png", "lq.png", "json"} - fields.keys():
                    fault(where, "missing_members", f"has {sorted(fields)}", ident)
                    failures, last = failures + 1, f"{where}: missing members"
                    continue
                raw = fields["gt.png"], fields["json"], fields["lq.png"]
            else:
                step, pos = walk.next()
                ident = ("sample", reader_id, k, step)
                if not fast and step % max(1, walk.lookahead // 2) == 0 and self.catalog.root.remote:
                    self.catalog.prefetch(s, walk.upcoming_shards(walk.lookahead))  # about the next window
                if fast:
                    if ident in self.known_faults:
                        continue
                    return (None,)
                key = s.key(pos)
                where = f"{s.shards[s.shard_id[pos]]} sample {key}"
                clean_id = -1 if s.clean_id is None else int(s.clean_id[pos])
                try:
                    if clean_id >= 0:  # online (format 1.2): the label, and the clean image unless a reader holds it
                        clean = synth.cached(clean_id)
                        raw = (self.catalog.read_label(s, pos),
                               self.catalog.read_clean(clean_id) if clean is None else clean)
                    else:
                        raw = self.catalog.read_sample(s, pos)
                except (OSError, fmt.DatasetError) as e:
                    fault(where, "read", str(e), ident)
                    failures, last = failures + 1, f"{where}: {e}"
                    continue
                if clean_id >= 0:
                    try:
                        return (key, *self._make(raw, clean_id, synth, epoch, where))
                    except (ValueError, cv2.error) as e:  # DatasetError, a bad label, or the engine refusing its params
                        fault(where, "corrupt", f"online: {e}", ident)
                        failures, last = failures + 1, f"{where}: corrupt: {e}"
                        continue
            try:
                gt_bytes, json_bytes, lq_bytes = raw
                lq, gt = decode(lq_bytes, f"{where} lq"), decode(gt_bytes, f"{where} gt")
                if lq.shape != gt.shape:
                    raise fmt.DatasetError("size_mismatch", f"LQ {lq.shape[1]}x{lq.shape[0]} and GT "
                                                            f"{gt.shape[1]}x{gt.shape[0]} differ in size")
                return key, json.loads(json_bytes), lq, gt
            except (ValueError, cv2.error) as e:  # DatasetError is a ValueError; a bad label too
                fault(where, "corrupt", str(e), ident)
                failures, last = failures + 1, f"{where}: corrupt: {e}"

    @staticmethod
    def _make(raw: tuple, clean_id: int, synth: Synthesiser, epoch: int, where: str) -> tuple:
        """An online sample (format 1.2) from its label bytes and its clean image (PNG bytes, or the
        decoded image a reader holds): its tile cut and degraded, (label, lq, gt)."""
        label_bytes, clean = raw
        label = json.loads(label_bytes)
        if isinstance(clean, bytes):
            clean = synth.decode(clean_id, clean, f"{where} clean image")
        lq, gt, label = synth.make(label, clean, epoch)
        return label, lq, gt

    def _finish(self, sample: tuple, crop: PairedCrop, seed: int) -> dict[str, Any]:
        key, label, lq, gt = sample
        lq, gt = crop(lq, gt, seed)
        chw = lambda a: torch.from_numpy(np.ascontiguousarray(a[..., ::-1].transpose(2, 0, 1)))  # RGB uint8
        return {"lq": chw(lq), "gt": chw(gt), "class_id": label["class_id"], "key": str(key),
                "type": label["type"], "source": label["source"], "label": label}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images and make them float in [0, 1] (once per batch: samples travel as uint8, a
    quarter of the bytes between processes), keep labels as lists; `faults` gathers what readers
    skipped."""
    return {
        "lq": torch.stack([s["lq"] for s in samples]).float().div_(255.0),
        "gt": torch.stack([s["gt"] for s in samples]).float().div_(255.0),
        "class_id": torch.tensor([s["class_id"] for s in samples], dtype=torch.long),
        "key": [s["key"] for s in samples], "type": [s["type"] for s in samples],
        "source": [s["source"] for s in samples], "label": [s["label"] for s in samples],
        "faults": [f for s in samples for f in s["faults"]],
    }
