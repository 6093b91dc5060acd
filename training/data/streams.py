"""The loader's catalogue: one stream per (type, source) of the selected preset, with what a reader
needs to find every sample without touching the data.

Indexed streams (a dataset with manifests) hold flat arrays only: per sample its shard (int32),
its member spans (int64: gt, json and lq offsets and sizes) and its key (one Arrow string array,
two flat buffers). A catalogue of 2.5M samples is ~250 MB of buffers that forked workers share
copy-on-write; there is no Python object per sample whose reference count a worker would write
(and so copy). Only the columns the loader needs are read from samples.parquet: from a folder
directly, from s3:// or hf:// by ranged reads of the parquet footer and those column chunks.

Streams from bare shard lists (no manifest) know only their shard URLs.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data import online
from training.data.online import CleanImages
from training.data.urls import Root
from uir25m import manifest, reader, subsets, taxonomy

log = logging.getLogger("uir.data")

SPAN_COLUMNS = ("gt_offset", "gt_size", "json_offset", "json_size", "lq_offset", "lq_size")
INDEX_COLUMNS = ("key", "partition", "type", "source", "shard", *SPAN_COLUMNS)
_DICTIONARY = ["partition", "type", "source", "shard"]  # a few distinct values over millions of rows
_PAIR_COLUMNS = ["type", "source", "partition", "source_lq", "source_gt", "variant"]


@dataclass
class Stream:
    """One (type, source) stream: its shards and, when the manifest is known, its samples."""

    code: str
    source: str
    ratio: float
    src_pairs: float  # source pairs (tiles of one pair count once); the shard count for bare shard lists
    shards: list[str]
    shard_id: np.ndarray | None = None  # int32 per sample: index into `shards` (indexed streams)
    keys: pa.Array | None = None  # one key per sample
    spans: np.ndarray | None = None  # int64 per sample: gt_offset, gt_size, json_offset, json_size, lq_offset, lq_size
    clean_id: np.ndarray | None = None  # int32 per sample: its clean image (online, format 1.2), -1 if stored

    @property
    def samples(self) -> int | None:
        return None if self.shard_id is None else len(self.shard_id)

    def key(self, pos: int) -> str:
        return self.keys[pos].as_py()


@dataclass
class Catalog:
    """The streams of one loader. `root` set: indexed (ranged reads); None: sequential tar streams."""

    streams: list[Stream]
    root: Root | None
    endpoint_url: str | None = None
    shard_info: dict[str, tuple[int, str]] = field(default_factory=dict)  # shard -> (bytes, sha256)
    clean: CleanImages | None = None  # the clean images of online samples (format 1.2)
    online_info: dict[str, Any] = field(default_factory=dict)  # build.json's online block: overrides, engine

    @property
    def online(self) -> bool:
        """Whether any stream has online samples."""
        return any(s.clean_id is not None and bool((s.clean_id >= 0).any()) for s in self.streams)

    @property
    def weights(self) -> np.ndarray:
        return np.array([s.ratio * s.src_pairs for s in self.streams], dtype=np.float64)

    def read_sample(self, stream: Stream, pos: int) -> tuple[bytes, bytes, bytes]:
        """The GT image, label JSON and LQ image bytes of sample `pos` of an indexed stream, in one
        ranged read (the members lie in that order in the shard)."""
        go, gs, jo, js, lo, ls = (int(v) for v in stream.spans[pos])
        if stream.clean_id is not None and stream.clean_id[pos] >= 0:
            raise reader.DatasetError("online", "an online sample has no stored images: read_label and read_clean")
        if min(go, gs, js, ls) < 0 or not (go + gs <= jo and jo + js <= lo):
            raise reader.DatasetError("bad_span", f"members at {go}+{gs}, {jo}+{js}, {lo}+{ls}: not gt, json, lq in order")
        region = self.root.read(stream.shards[stream.shard_id[pos]], go, lo + ls - go, group=f"{stream.code}/{stream.source}")
        return region[:gs], region[jo - go:jo - go + js], region[lo - go:lo - go + ls]

    def read_label(self, stream: Stream, pos: int) -> bytes:
        """The label JSON of sample `pos` (all an online sample's shard holds besides its class)."""
        _, _, jo, js, _, _ = (int(v) for v in stream.spans[pos])
        return self.root.read(stream.shards[stream.shard_id[pos]], jo, js, group=f"{stream.code}/{stream.source}")

    def read_clean(self, clean_id: int) -> bytes:
        """The PNG bytes of clean image `clean_id` (online samples)."""
        c = self.clean
        offset, size = (int(v) for v in c.spans[clean_id])
        shard = int(c.shard_id[clean_id])
        return self.root.read(c.shards[shard], offset, size, group=f"clean/{c.sources[shard]}")

    def prefetch(self, stream: Stream, shard_ids) -> None:
        """Ask the shard cache (remote roots) to fetch these shards of `stream` in the background."""
        if self.root is not None and self.root.cache is not None:
            self.root.cache.prefetch(stream.shards[i] for i in shard_ids)

    def shares(self) -> dict[str, float]:
        """Effective share of draws per type (as `uir-train shares` reports it)."""
        return subsets.shares({(s.code, s.source): float(w) for s, w in zip(self.streams, self.weights)})


def _select(preset: subsets.Preset, code: str, source: str) -> float | None:
    sel = preset.selection(code, source)
    return None if sel is None else sel.ratio


def _source_pairs(root: Root, shards: pa.Table, partition: str) -> dict[tuple[str, str], int]:
    """Source pairs per (type, source): from shards.parquet (format 1.1), or counted from
    samples.parquet's pair columns, one stream at a time (format 1.0)."""
    if "source_pairs" in shards.column_names:
        return manifest.source_pairs("", partition, shards=shards)
    table = root.read_parquet(manifest.SAMPLES, columns=_PAIR_COLUMNS)
    return manifest.count_source_pairs(table.to_batches(max_chunksize=65_536), partition)


def catalog_from_dataset(root_url: str, preset: subsets.Preset, partition: str, endpoint_url: str | None = None) -> Catalog:
    """The streams of a dataset folder or published copy, from its manifests (columnar)."""
    root = Root(root_url, endpoint_url)
    try:
        shards = root.read_parquet(manifest.SHARDS)
        index = _read_index(root)
    except (OSError, FileNotFoundError) as e:
        raise FileNotFoundError(f"{root_url}: cannot read its manifests ({e}); is this a UIR dataset?") from None
    names, codes, keys, spans, online_keys = index
    clean, online_info, clean_ids = None, {}, None
    if online_keys is not None:
        clean_table = root.read_parquet(manifest.CLEAN) if len(online_keys) else manifest.CLEAN_SCHEMA.empty_table()
        clean = CleanImages.from_table(clean_table, f"{root_url}/{manifest.CLEAN}")
        clean_ids = clean.ids(online_keys)
        missing = int(((clean_ids < 0) & codes["online"].astype(bool)).sum())
        if missing:
            raise reader.DatasetError("missing_clean", f"{root_url}: {missing} online samples name a clean image "
                                                       f"{manifest.CLEAN} does not list; run `uir-build verify`")
        clean_ids = np.where(codes["online"].astype(bool), clean_ids, -1).astype(np.int32)
        online_info = online.build_info(json.loads(root.read_all(manifest.BUILD_JSON)))
    reader.check_column(names["shard"], f"{root_url}/{manifest.SAMPLES}", shards=True)
    if len(codes["shard"]) and codes["shard"].min() < 0:
        raise reader.DatasetError("unsafe_path", f"{root_url}/{manifest.SAMPLES}: a sample has no shard")
    pairs = _source_pairs(root, shards, partition)
    wanted = names["partition"].index(partition) if partition in names["partition"] else -1
    streams = []
    for (t, s), rows in _runs(codes["partition"], codes["type"], codes["source"], wanted):
        code, source = names["type"][t], names["source"][s]
        ratio = _select(preset, code, source)
        if ratio is None:
            continue
        shard_codes = codes["shard"][rows]
        used = np.unique(shard_codes)
        order = np.argsort([names["shard"][i] for i in used], kind="stable")  # the stream's shards by path
        local = np.empty(len(names["shard"]), dtype=np.int32)
        local[used[order]] = np.arange(len(used), dtype=np.int32)
        stream_keys = keys.slice(rows.start, rows.stop - rows.start) if isinstance(rows, slice) else keys.take(pa.array(rows))
        stream_clean = None if clean_ids is None or not (clean_ids[rows] >= 0).any() else clean_ids[rows]
        streams.append(Stream(code, source, ratio, float(pairs.get((code, source), len(shard_codes))),
                              [names["shard"][i] for i in used[order]], local[shard_codes], stream_keys, spans[rows],
                              stream_clean))
    if not streams:
        raise ValueError(f"{root_url}: the {partition} partition holds none of preset {preset.name!r}'s (type, source) pairs")
    streams.sort(key=lambda st: (taxonomy.get(st.code).class_id, st.source))
    info = dict(zip(shards.column("shard").to_pylist(), zip(shards.column("bytes").to_pylist(),
                                                            shards.column("sha256").to_pylist())))
    return Catalog(streams, root, endpoint_url, info, clean if clean_ids is not None else None, online_info)


def _read_index(root: Root) -> tuple[dict[str, list[str]], dict[str, np.ndarray], pa.Array, np.ndarray, pa.Array | None]:
    """samples.parquet's index columns, a batch at a time, into flat arrays: the distinct values
    and an int32 code per row of the few-valued columns, the keys, the spans (N x 6 int64), and
    (format 1.2) `online` as a code and the online samples' clean keys ("" for stored ones; None
    for an older dataset). Memory is the arrays themselves plus one batch."""
    with root.open_parquet(manifest.SAMPLES, read_dictionary=_DICTIONARY) as pf:
        n = pf.metadata.num_rows
        has_online = "online" in pf.schema_arrow.names
        names: dict[str, list[str]] = {}
        lookup: dict[str, dict[str, int]] = {c: {} for c in _DICTIONARY}
        codes = {c: np.empty(n, dtype=np.int32) for c in _DICTIONARY}
        codes["online"] = np.zeros(n, dtype=np.int8)
        spans = np.empty((n, len(SPAN_COLUMNS)), dtype=np.int64)
        keys, clean_keys, at = [], [], 0
        columns = list(INDEX_COLUMNS) + (["online", "clean_key"] if has_online else [])
        for batch in pf.iter_batches(batch_size=65_536, columns=columns):
            m = batch.num_rows
            for c in _DICTIONARY:
                col = batch.column(c)
                if not isinstance(col, pa.DictionaryArray):
                    col = pc.dictionary_encode(col)
                ids = [lookup[c].setdefault(v, len(lookup[c])) for v in col.dictionary.to_pylist()]
                local = pc.fill_null(col.indices, -1).to_numpy(zero_copy_only=False)
                codes[c][at:at + m] = np.asarray(ids + [-1], dtype=np.int32)[local]  # -1 (a null) stays -1
            for j, c in enumerate(SPAN_COLUMNS):
                spans[at:at + m, j] = batch.column(c).to_numpy(zero_copy_only=False)
            keys.append(batch.column("key"))
            if has_online:
                codes["online"][at:at + m] = batch.column("online").to_numpy(zero_copy_only=False)
                if codes["online"][at:at + m].any():
                    clean_keys.append(batch.column("clean_key"))
                else:  # a stored batch: no clean key worth holding
                    clean_keys.append(pa.nulls(m, pa.string()))
            at += m
    names = {c: list(lookup[c]) for c in _DICTIONARY}
    online_keys = None
    if has_online and codes["online"].any():
        online_keys = pa.concat_arrays(clean_keys)
    return names, codes, (pa.concat_arrays(keys) if keys else pa.array([], pa.string())), spans, online_keys


def _runs(partition: np.ndarray, type_: np.ndarray, source: np.ndarray, wanted: int):
    """((type code, source code), rows) of each stream of the wanted partition, in manifest order.
    A dataset built here lists a stream's rows together (shard order): the rows are a slice of the
    manifest and nothing is copied. Otherwise they are gathered with a stable sort."""
    if not len(partition):
        return []
    stream = type_.astype(np.int64) * (int(source.max(initial=0)) + 1) + source
    stream = np.where(partition == wanted, stream, -1)
    cuts = np.flatnonzero(np.diff(stream)) + 1
    runs = [(int(a), int(b)) for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(stream)]]))
            if stream[a] >= 0]
    ids = [int(stream[a]) for a, _ in runs]
    if len(set(ids)) == len(ids):  # every stream in one run
        return [((int(type_[a]), int(source[a])), slice(a, b)) for a, b in runs]
    order = np.argsort(stream, kind="stable")
    cuts = np.flatnonzero(np.diff(stream[order])) + 1
    return [((int(type_[rows[0]]), int(source[rows[0]])), rows) for rows in np.split(order, cuts)
            if stream[rows[0]] >= 0]


def expand_urls(source: str | Sequence[str]) -> list[str]:
    """A shard list: a sequence, or one string with brace ranges (`x-{000000..000009}.tar`)."""
    if isinstance(source, str):
        import braceexpand

        return list(braceexpand.braceexpand(source))
    return list(source)


def catalog_from_shards(urls: Sequence[str], preset: subsets.Preset, partition: str, endpoint_url: str | None = None) -> Catalog:
    """Streams from bare shard URLs, told apart by their `<code>-<source>-NNNNNN.tar` names. Without
    a manifest the counts are unknown: weights use the number of shards (a warning says so)."""
    by_stream: dict[tuple[str, str], list[str]] = {}
    for url in urls:
        parts = manifest.shard_parts(url.split()[-1] if url.startswith("pipe:") else url)
        if parts is None:
            raise ValueError(f"{url}: not a UIR shard name (<code>-<source>-NNNNNN.tar)")
        shard_partition, code, source = parts
        if shard_partition and shard_partition != partition:
            continue
        taxonomy.get(code)
        by_stream.setdefault((code, source), []).append(url)
    streams = [Stream(c, s, r, float(len(u)), sorted(u)) for (c, s), u in sorted(by_stream.items())
               if (r := _select(preset, c, s)) is not None]
    if not streams:
        raise ValueError(f"none of the shards belong to preset {preset.name!r}")
    log.warning("loading bare shards without samples.parquet: repeat-sampling weights use shard counts, not pair counts")
    return Catalog(streams, None, endpoint_url)


def stream_summary(streams: list[Stream]) -> list[Any]:
    """What identifies the streams (for the loader's state fingerprint)."""
    return [(s.code, s.source, s.ratio, s.src_pairs, len(s.shards), s.samples) for s in streams]
