"""Repeat sampling: a seeded quota scheduler (smooth weighted round-robin) that picks the stream
of every draw, seeds derived from their parts, and the deal of a stream's shards over groups of
readers (the nodes).

Smooth weighted round-robin: every draw adds each stream's weight to its credit, takes the stream
with the most credit and charges it the total weight. Over any window a stream's count differs
from weight x draws / total by less than one draw, and streams interleave evenly, so batches mix
types. Integer weights summing to T give every stream exactly its weight in each T draws.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from its parts (the same parts give the same seed in every process)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


class QuotaScheduler:
    """Deterministic stream choice: a function of the weights, the seed and the number of draws, so
    a reader resumes by drawing again (no state to save)."""

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


def deal(n_items: int, groups: int, group: int, seed: int) -> np.ndarray:
    """The items (0..n_items-1) dealt to `group` of `groups`: a seeded permutation dealt round-robin,
    so groups get equal shares (within one) and the deal is the same on every reader."""
    if groups <= 1:
        return np.arange(n_items)
    order = np.random.default_rng(seed).permutation(n_items)
    return np.sort(order[group::groups])
