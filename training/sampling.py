"""Repeat sampling: a seeded quota scheduler (smooth weighted round-robin) that picks the stream
of every draw, and the split of each stream over readers (ranks x workers).

Smooth weighted round-robin: every draw adds each stream's weight to its credit, takes the stream
with the most credit and charges it the total weight. Over any window a stream's count differs
from weight x draws / total by less than one draw, and streams interleave evenly, so batches mix
types. Integer weights summing to T give every stream exactly its weight in each T draws.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class QuotaScheduler:
    """Deterministic stream choice; `state()` / `from_state()` let a reader resume exactly."""

    def __init__(self, weights: Sequence[float], seed: int):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or not len(w) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        # streams in a seeded order: ties go to the earlier one, so the seed changes the sequence
        # while the zero starting credit keeps the exact period (T draws, each stream its weight)
        self.order = np.random.default_rng(seed).permutation(len(w))
        self.weights = w[self.order]
        self.total = float(w.sum())
        self.credit = np.zeros(len(w), dtype=np.float64)
        self.draws = 0

    def next(self) -> int:
        self.credit += self.weights
        k = int(np.argmax(self.credit))
        self.credit[k] -= self.total
        self.draws += 1
        return int(self.order[k])

    def state(self) -> dict:
        return {"credit": self.credit.tolist(), "draws": self.draws}

    def load(self, state: dict) -> None:
        self.credit = np.asarray(state["credit"], dtype=np.float64)
        self.draws = int(state["draws"])


def split_shards(n_shards: int, readers: int) -> bool:
    """Split a stream by shard when it has at least one shard per reader, else by sample index."""
    return n_shards >= readers


def portion(shard_ids: np.ndarray, n_shards: int, reader: int, readers: int, seed: int) -> np.ndarray:
    """Positions (into the stream's sample list) that `reader` of `readers` owns, disjoint across
    readers and together complete: whole shards (dealt out in a seeded order) when the stream has
    enough of them, else every `readers`-th sample."""
    n = len(shard_ids)
    if readers <= 1:
        return np.arange(n)
    if split_shards(n_shards, readers):
        order = np.random.default_rng(seed).permutation(n_shards)
        owner = np.empty(n_shards, dtype=np.int64)
        owner[order] = np.arange(n_shards) % readers
        return np.flatnonzero(owner[shard_ids] == reader)
    return np.arange(reader, n, readers)
