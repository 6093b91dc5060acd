"""`make_loader` and the DataLoader that knows where it is.

Its workers start once and run through epoch boundaries (there are never two sets of them); an
epoch is `len(loader)` batches of the workers' endless streams. The loader's position is the
number of batches it has handed out since the start; its state (`state_dict()`, format below) is
that position as (epoch, batches consumed in it), the faults met, and a fingerprint of what the
position means (data, preset, seed, batch, crop, ranks, workers, window):

    {"epoch": int, "consumed": int, "faults": [[...], ...], "fingerprint": str, "walk": "windowed-1"}

`load_state_dict()` or `set_epoch()` to another position restarts the workers there (each
fast-forwards by counting); iterating on from where the last epoch stopped does not.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from training.data.cache import ShardCache, default_dir
from training.data.dataset import FAULT_BUDGET, UIRDataset, collate
from training.data.online import MODES, warn_versions
from training.data.readers import WINDOW, ranks_per_node
from training.data.streams import Catalog, catalog_from_dataset, catalog_from_shards, expand_urls, stream_summary
from uir25m import manifest, subsets

log = logging.getLogger("uir.data")

WALK = "windowed-1"  # the walk whose positions the state counts (see training.data.readers)


class UIRDataLoader(DataLoader):
    """A DataLoader that knows where it is: `state_dict()` / `load_state_dict()` for checkpoints,
    `set_epoch()`, and counts of what it skipped (`faults`, `fault_log`)."""

    def __init__(self, dataset: UIRDataset, *, allow_revision_change: bool = False, **kwargs: Any):
        super().__init__(dataset, batch_size=dataset.batch_size, collate_fn=collate, **kwargs)
        self.allow_revision_change = allow_revision_change
        self.position = 0  # batches handed out since the start (all epochs)
        self.fault_log: list[tuple] = []
        self.faults: Counter[str] = Counter()
        self._live = None  # the running workers' batch iterator
        self._live_at = -1  # the position of the batch it gives next

    def __len__(self) -> int:
        return self.dataset.epoch_batches()

    @property
    def epoch(self) -> int:
        return self.position // len(self)

    @property
    def consumed(self) -> int:
        return self.position % len(self)

    def set_epoch(self, epoch: int) -> None:
        """Go to the start of `epoch` (a no-op when the loader is there already)."""
        self.position = int(epoch) * len(self)

    def _fingerprint(self) -> str:
        d: UIRDataset = self.dataset
        ident = (d.seed, d.batch_size, d.crop, d.flips, d.world_size, d.workers, d.rank, d.local_world_size, d.window,
                 stream_summary(d.catalog.streams), *(("online", d.online) if d.online != "fixed" else ()))
        return hashlib.sha256(repr(ident).encode()).hexdigest()[:16]

    @property
    def revision(self) -> str:
        """The commit every file is read at (hf://), "" for data without revisions."""
        root = self.dataset.catalog.root
        return root.revision if root is not None else ""

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "faults": [list(f) for f in self.fault_log],
                "fingerprint": self._fingerprint(), "walk": WALK, "revision": self.revision}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("walk") != WALK:
            theirs = state.get("walk", "the per-epoch walk of uir25m 0.1")
            raise ValueError(f"the checkpoint's loader position counts another walk ({theirs}; this loader's is "
                             f"{WALK}): its position cannot be restored")
        theirs = state.get("revision", "")
        if theirs != self.revision and not self.allow_revision_change:
            raise ValueError(f"the checkpoint read the data at revision {theirs or '(none)'}, this loader reads "
                             f"{self.revision or '(none)'}: the offsets may point into other bytes. Pin the old one "
                             f"(hf://user/name@{theirs[:12] or 'REV'}), or pass allow_revision_change=True "
                             "(data.allow_revision_change=true) to resume anyway")
        if state.get("fingerprint") != self._fingerprint():
            raise ValueError("the loader's data, preset, seed, batch size, crop, workers or ranks differ from the "
                             "checkpoint's: its position cannot be restored")
        self.position = int(state["epoch"]) * len(self) + int(state["consumed"])
        self.fault_log = [tuple(f) for f in state.get("faults", [])]
        self.faults = Counter(_kind(f) for f in self.fault_log)

    def __iter__(self):
        """The rest of the current epoch (all of it at an epoch's start)."""
        end = (self.epoch + 1) * len(self)
        while self.position < end:
            if self._live is None or self._live_at != self.position:
                self._start()
            batch = next(self._live)
            self._live_at += 1
            self.position += 1
            for f in batch["faults"]:
                self.fault_log.append(tuple(f))
                self.faults[_kind(f)] += 1
            yield batch

    def _start(self) -> None:
        """(Re)start the workers at the current position, forking them while OpenCV runs
        single-threaded: a worker forked while this process's OpenCV thread pool exists hangs in
        its first OpenCV call. The caller's setting is restored after."""
        self._live = None  # the old workers shut down
        d: UIRDataset = self.dataset
        d.start = self.position
        d.known_faults = {tuple(f[:-3]) for f in self.fault_log}
        before = cv2.getNumThreads()
        if self.num_workers:
            cv2.setNumThreads(1)
        try:
            self._live = super().__iter__()
        finally:
            if self.num_workers:
                cv2.setNumThreads(before)
        self._live_at = self.position


def _kind(fault: Sequence) -> str:
    return str(fault[-3])


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
    local_world_size: int | None = None,
    strict: bool = False,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    endpoint_url: str | None = None,
    fault_budget: int = FAULT_BUDGET,
    window: int = WINDOW,
    cache_dir: str | os.PathLike | None = None,
    cache_limit: int | None = None,
    allow_revision_change: bool = False,
    online: str = "fixed",
) -> UIRDataLoader:
    """A DataLoader over a UIR dataset (a folder, `file://`, `s3://bucket/prefix` or `hf://user/name`
    holding manifests/) or over bare shards (a list or brace pattern of paths or URLs, `pipe:` too).

    Batches: `lq`, `gt` (float32 B x 3 x crop x crop in [0, 1], the same window), `class_id`, `key`,
    `type`, `source`, `label` (the full labels) and `faults` (what was skipped). `subset` is a preset
    name (or Preset); `types` selects codes from any source instead; `ratios` overrides a preset's
    ratios per type. Rank and world size default to torch.distributed or RANK / WORLD_SIZE; ranks per
    node to LOCAL_WORLD_SIZE. `window`: shards of a stream a node walks at a time (the walk's
    shuffle scope). The workers start once and live through epoch boundaries.

    A remote dataset (s3://, hf://user/name[@revision]) is read shard by shard into a node-local
    cache: `cache_dir` (default: $XDG_CACHE_HOME/uir25m/shards), at most `cache_limit` bytes
    (default: twice what the loader holds at once, see `cache_needs`; less than that is refused).
    An hf:// revision is resolved to its commit once; `allow_revision_change` lets a loader resume a
    state recorded at another commit.

    Online samples (an `--online` build, format 1.2) are made from their stored clean image:
    `online="fixed"` with the label's params (the offline build's pixels), `"fresh"` with new params
    every epoch (seed from (seed, epoch, key), recorded in the batch's labels); see
    `training.data.online`. On a dataset without online samples `fixed` changes nothing and
    `fresh` is an error.
    """
    if online not in MODES:
        raise ValueError(f"online must be one of {', '.join(MODES)}, not {online!r}")
    for name, value, low in (("batch_size", batch_size, 1), ("crop", crop, 1), ("num_workers", num_workers, 0),
                             ("fault_budget", fault_budget, 1), ("window", window, 1)):
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
    if online == "fresh" and not catalog.online:
        raise ValueError(f"{source}: online='fresh' needs online samples, and this data has none (selected: "
                         f"{preset.name}); build with `uir-build build ... --online`, or use online='fixed'")
    if catalog.online:
        warn_versions(str(source), catalog.online_info.get("engine") or {})
    if not bare and catalog.root.remote:
        attach_cache(catalog, cache_dir, cache_limit, window)
    dataset = UIRDataset(catalog, batch_size=batch_size, crop=crop, flips=flips, seed=seed, rank=rank,
                         world_size=world_size, num_workers=num_workers, strict=strict, fault_budget=fault_budget,
                         local_world_size=local_world_size or ranks_per_node(world_size), window=window, online=online)
    if dataset.epoch_batches() < 1:
        raise ValueError(f"an epoch of {catalog.weights.sum():g} draws over {world_size} rank(s) makes no batch of {batch_size}")
    log.info("\n".join(share_lines(catalog, preset, dataset.epoch_batches())))
    kwargs: dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin_memory}
    if num_workers > 0 and prefetch_factor:
        kwargs["prefetch_factor"] = prefetch_factor
    return UIRDataLoader(dataset, allow_revision_change=allow_revision_change, **kwargs)


def cache_needs(catalog: Catalog, window: int) -> tuple[int, int, int]:
    """(bytes, streams, largest shard) a node's shard cache must hold at once: every stream has
    its current window open, the window its slowest reader is still on, and the next one being
    prefetched: streams x 3 x window x the largest shard."""
    read = {sh for s in catalog.streams for sh in s.shards} | _clean_shards(catalog)
    largest = max((catalog.shard_info.get(sh, (0, ""))[0] for sh in read), default=0)
    groups = len(catalog.streams) + (len(set(catalog.clean.sources)) if catalog.online else 0)  # + clean sources
    return groups * 3 * window * largest, groups, largest


def _clean_shards(catalog: Catalog) -> set[str]:
    """The clean shards an online catalogue reads (format 1.2)."""
    if not catalog.online:
        return set()
    used = np.unique(np.concatenate([catalog.clean.shard_id[s.clean_id[s.clean_id >= 0]] for s in catalog.streams
                                     if s.clean_id is not None]))
    return {catalog.clean.shards[i] for i in used}


def attach_cache(catalog: Catalog, cache_dir: str | os.PathLike | None, cache_limit: int | None, window: int) -> ShardCache:
    """Give a remote catalogue's root its node-local shard cache."""
    need, streams, largest = cache_needs(catalog, window)
    limit = 2 * need if cache_limit is None else int(cache_limit)
    if limit < need:
        raise ValueError(f"cache_limit {limit:,} bytes is below what this loader holds at once: {streams} streams x 3 "
                         f"windows x {window} shard(s) x the largest shard ({largest:,} bytes) = {need:,} bytes")
    root = catalog.root
    slug = hashlib.sha256(root.ident.encode()).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.ident.split("://", 1)[-1])[:80]
    folder = Path(cache_dir or default_dir()) / f"{name}-{slug}"
    shards = {sh for s in catalog.streams for sh in s.shards} | _clean_shards(catalog)
    root.cache = ShardCache(folder, limit, root.fetch, {k: v for k, v in catalog.shard_info.items() if k in shards},
                            keep=window)
    log.info("shard cache %s: up to %.1f GB (this loader holds up to %.1f GB at once)", folder, limit / 1e9, need / 1e9)
    return root.cache



def share_lines(catalog: Catalog, preset: subsets.Preset, epoch_batches: int) -> list[str]:
    """The effective share of draws per type, as the loader logs it at start."""
    shares = catalog.shares()
    lines = [f"repeat sampling, preset {preset.name}: {len(catalog.streams)} streams, epoch = "
             f"{catalog.weights.sum():g} draws = {epoch_batches} batches per rank"]
    for code, share in shares.items():
        lines.append(f"  {code:<9} {100 * share:6.2f} % of draws")
    missing = [c for c in preset.codes if c not in shares]
    if missing:
        lines.append(f"  absent from the data: {', '.join(missing)}")
    return lines
