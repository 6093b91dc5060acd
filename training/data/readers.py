"""Who reads what, and in which order: the readers' layout and their walks over the streams.

A reader is one DataLoader worker of one rank (`workers` per rank; 1 without workers). Readers are
grouped by node (the ranks of one machine, `LOCAL_WORLD_SIZE` of them under torchrun), because a
node shares one cache of fetched shards.

The walk of an indexed stream (the only walk, for a local folder and a remote copy alike, so both
give the same batches): a stream's shards are dealt to the nodes (each node its own shards) when
there are at least as many shards as nodes, else every node walks all of them. Pass after pass,
the node's shards are taken in a seeded order, `window` shards at a time; the samples of a window
are shuffled together, and the pass's sequence of windows is dealt to the node's readers sample by
sample (element j to reader j mod readers), so within a pass the readers read disjoint samples,
together every sample once, and a node holds about `window` shards of each stream at a time
whatever its number of readers. Everything is a function of (seed, stream, node, pass): a reader
skips ahead by counting, without reading anything.

Shuffle quality against a walk over the whole stream: a sample's neighbours in a reader's
sequence come from `window` shards of its stream, not from all of them; the shard order changes
every pass, and the scheduler interleaves all streams draw by draw, so batches mix types as before.

Streams of bare shard lists (no manifest) are streamed from start to end, shard by shard.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from training.data.sampling import deal, derive_seed
from training.data.streams import Stream
from training.data.urls import open_stream
from uir25m import reader as fmt

WINDOW = 2  # shards of a stream a node holds at a time


@dataclass(frozen=True)
class Layout:
    """Where one reader stands: rank, node, worker."""

    rank: int
    world_size: int
    local_world_size: int  # ranks per node
    workers: int  # readers per rank (1 without workers)
    worker: int  # this reader's logical worker index

    @property
    def nodes(self) -> int:
        return max(1, self.world_size // self.local_world_size)

    @property
    def node(self) -> int:
        return self.rank // self.local_world_size if self.nodes > 1 else 0

    @property
    def node_readers(self) -> int:
        return self.world_size * self.workers // self.nodes

    @property
    def node_reader(self) -> int:
        """This reader's index among its node's readers."""
        return (self.rank % (self.world_size // self.nodes)) * self.workers + self.worker

    @property
    def reader(self) -> int:
        """This reader's index among all readers."""
        return self.rank * self.workers + self.worker

    @property
    def readers(self) -> int:
        return self.world_size * self.workers


def ranks_per_node(world_size: int) -> int:
    """Ranks per node: torchrun's LOCAL_WORLD_SIZE when it divides the world, else one node."""
    n = int(os.environ.get("LOCAL_WORLD_SIZE", world_size) or world_size)
    return n if n >= 1 and world_size % n == 0 else world_size


class Walk:
    """A reader's endless walk over its share of one indexed stream (see the module docstring):
    `next()` gives (step, position in the stream); `step` counts the positions walked so far."""

    def __init__(self, stream: Stream, layout: Layout, seed: int, window: int = WINDOW):
        self.stream, self.window = stream, max(1, window)
        n_shards = len(stream.shards)
        if n_shards >= layout.nodes:  # each node its own shards; the node's readers share them
            self.shards = deal(n_shards, layout.nodes, layout.node, derive_seed(seed, "deal"))
            self.group_seed = derive_seed(seed, "node", layout.node)
            self.readers, self.index = layout.node_readers, layout.node_reader
        else:  # fewer shards than nodes: every node walks them all, all readers share them
            self.shards = np.arange(n_shards)
            self.group_seed = derive_seed(seed, "all")
            self.readers, self.index = layout.readers, layout.reader
        counts = np.bincount(stream.shard_id, minlength=n_shards)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        in_order = len(stream.shard_id) < 2 or bool(np.all(np.diff(stream.shard_id) >= 0))  # as built
        self._order = None if in_order else np.argsort(stream.shard_id, kind="stable")
        total = int(counts[self.shards].sum())
        self.per_pass = max(0, -(-(total - self.index) // self.readers))  # ceil((total - index) / readers)
        # how far ahead a remote reader looks for shards to prefetch: about one window of its positions
        self.lookahead = max(4, self.window * total // max(1, len(self.shards)) // self.readers)
        self.pass_no, self.step, self._mine, self._i = -1, 0, np.empty(0, np.int64), 0
        self._following: tuple[int, np.ndarray] | None = None  # the next pass, when made early

    def pass_positions(self, pass_no: int) -> np.ndarray:
        """This reader's positions in pass `pass_no`, in walk order."""
        rng = np.random.default_rng(derive_seed(self.group_seed, pass_no))
        order = rng.permutation(self.shards)
        windows = []
        for w in range(0, len(order), self.window):
            pos = np.concatenate([self._positions(j) for j in order[w:w + self.window]])
            windows.append(np.random.default_rng(derive_seed(self.group_seed, pass_no, w)).permutation(pos))
        sequence = np.concatenate(windows) if windows else np.empty(0, np.int64)
        return sequence[self.index::self.readers]

    def _positions(self, shard: int) -> np.ndarray:
        """The stream positions of one shard's samples, in tar order."""
        a, b = self._starts[shard], self._starts[shard + 1]
        return np.arange(a, b) if self._order is None else self._order[a:b]

    def next(self) -> tuple[int, int]:
        if self.per_pass == 0:
            raise RuntimeError(f"stream {self.stream.code}/{self.stream.source}: reader has no sample of it")
        while self._i >= len(self._mine):
            self.pass_no += 1
            self._mine, self._i = self._upcoming_pass(), 0
            self._following = None
        pos = int(self._mine[self._i])
        self._i += 1
        self.step += 1
        return self.step - 1, pos

    def _upcoming_pass(self) -> np.ndarray:
        """The positions of pass `pass_no` (made once, whether for prefetch or for the walk)."""
        if self._following is not None and self._following[0] == self.pass_no:
            return self._following[1]
        return self.pass_positions(self.pass_no)

    def upcoming_shards(self, n: int) -> list[int]:
        """The shards of this reader's next `n` positions (into the next pass near a pass's end),
        for prefetch."""
        ahead = self._mine[self._i:self._i + n]
        if len(ahead) < n:
            if self._following is None or self._following[0] != self.pass_no + 1:
                self._following = (self.pass_no + 1, self.pass_positions(self.pass_no + 1))
            ahead = np.concatenate([ahead, self._following[1][:n - len(ahead)]])
        return list(dict.fromkeys(int(self.stream.shard_id[p]) for p in ahead))


class SequentialCursor:
    """A reader's walk over its shards of one bare stream (no manifest), each streamed from start
    to end, pass after pass: whole shards dealt to readers (seeded, the same on every reader) when
    the stream has one per reader, else every reader walks all shards in a shared order and keeps
    every readers-th sample."""

    def __init__(self, stream: Stream, reader: int, readers: int, seed: int, shared_seed: int, endpoint_url: str | None,
                 on_fault: Callable[[str, str], None] | None):
        self.stream, self.reader, self.readers, self.seed = stream, reader, readers, seed
        self.shared_seed = shared_seed
        self.endpoint_url, self.on_fault = endpoint_url, on_fault
        self.pass_no = -1
        self._it: Iterator | None = None

    def _pass(self) -> Iterator[tuple[str, dict[str, bytes]]]:
        n = len(self.stream.shards)
        by_shard = n >= self.readers
        if by_shard:
            owned = deal(n, self.readers, self.reader, derive_seed(self.shared_seed, "deal"))
            order = np.random.default_rng(derive_seed(self.seed, self.pass_no)).permutation(owned)
        else:
            order = np.random.default_rng(derive_seed(self.shared_seed, "walk", self.pass_no)).permutation(n)
        count = 0
        for j in order:
            url = self.stream.shards[j]
            try:
                with open_stream(url, self.endpoint_url) as f:
                    for key, fields in fmt.iter_tar(f, url):
                        if by_shard or count % self.readers == self.reader:
                            yield key, fields
                        count += 1
            except (OSError, ValueError) as e:  # DatasetError (a bad tar or member) is a ValueError
                if self.on_fault is not None:
                    self.on_fault(url, f"{type(e).__name__}: {e}")

    def next(self) -> tuple[int, str, dict[str, bytes]]:
        """(pass, key, fields) of the next sample."""
        for _ in range(2):
            if self._it is not None:
                item = next(self._it, None)
                if item is not None:
                    return (self.pass_no, *item)
            self.pass_no += 1
            self._it = self._pass()
            item = next(self._it, None)
            if item is not None:
                return (self.pass_no, *item)
        raise OSError(f"stream {self.stream.code}/{self.stream.source}: no readable sample for this reader")


def decode(data: bytes, where: str = "image") -> np.ndarray:
    """BGR pixels of a PNG or JPEG member; its size is held to the pixel limit before inflating."""
    return fmt.decode_bgr(data, where)
