"""The UIR format v1 spec on the manifest side: the key rule, the label schema, the parquet
schemas of samples / shards / rejects, and their deterministic I/O. `training` reads datasets
through this module only.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from json.encoder import encode_basestring as _encode_basestring  # the C implementation
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq

from uir25m import taxonomy
from uir25m.atomic import atomic_open

FORMAT_VERSION = 1  # the label's `format_version` (its schema)
# additions readers may look for: 1 = format 1.1 (shards.parquet `source_pairs`); 2 = format 1.2
# (online samples: samples.parquet `online` and `clean_key`, shards.parquet `kind`, clean shards and
# manifests/clean.parquet)
FORMAT_REVISION = 2
FIELDS = ("cls", "gt.png", "json", "lq.png")  # the tar members of every sample, in tar order
PARTITIONS = ("train", "test")
SOURCE_RE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")  # no hyphens: `<code>-<source>-*.tar` globs stay exact
KEY_RE = re.compile(r"^[a-z0-9_]{1,64}$")
MAX_SOURCE_LEN = 32
SAMPLES = "manifests/samples.parquet"
SHARDS = "manifests/shards.parquet"
REJECTS = "manifests/rejects.parquet"
CLEAN = "manifests/clean.parquet"
PARTS = "manifests/parts"
BUILD_JSON = "build.json"
KINDS = ("samples", "clean")  # shards.parquet `kind`: sample shards, or clean images for online samples


class FormatError(ValueError):
    """Something that would break the format's rules."""


def check_source(name: str) -> str:
    """Validate a source name: lowercase letters, digits and single underscores, <= 32 chars."""
    if not isinstance(name, str) or not SOURCE_RE.match(name) or len(name) > MAX_SOURCE_LEN:
        raise FormatError(
            f"invalid source name {name!r}: use lowercase letters, digits and single underscores "
            f"(no hyphens or dots), at most {MAX_SOURCE_LEN} characters"
        )
    return name


def sample_key(code: str, source: str, lq_relpath: str, gt_relpath: str, variant: str, tile: str) -> str:
    """`{code}_{source}_{digest}`: digest = first 16 hex of sha256 over the identifying fields."""
    taxonomy.get(code)
    check_source(source)
    ident = "\x1f".join((source, lq_relpath, gt_relpath, variant, tile))
    key = f"{code}_{source}_{hashlib.sha256(ident.encode('utf-8')).hexdigest()[:16]}"
    if not KEY_RE.match(key):
        raise FormatError(f"key {key!r} breaks the key rule (lowercase, no dots, <= 64 characters)")
    return key


def shard_relpath(partition: str, code: str, source: str, index: int) -> str:
    """`data/<partition>/<group>/<code>/<code>-<source>-<000000>.tar`."""
    if partition not in PARTITIONS:
        raise FormatError(f"invalid partition {partition!r}; one of {', '.join(PARTITIONS)}")
    group = taxonomy.get(code).group
    return f"data/{partition}/{group}/{code}/{code}-{check_source(source)}-{index:06d}.tar"


def shard_parts(path: str) -> tuple[str, str, str] | None:
    """(partition, code, source) of a shard path or URL laid out as `shard_relpath` lays them
    (partition "" when the path does not show the layout's folders); None if the file is not
    named `<code>-<source>-NNNNNN.tar`."""
    parts = path.split("?")[0].split("/")
    stem, dot, ext = parts[-1].rpartition(".")
    code, _, rest = stem.partition("-")
    source, _, index = rest.rpartition("-")
    if ext != "tar" or not (code and source and len(index) == 6 and index.isdigit()) or not SOURCE_RE.match(source):
        return None
    partition = parts[-4] if len(parts) >= 4 and parts[-4] in PARTITIONS else ""
    return partition, code, source


def clean_key(source: str, relpath: str) -> str:
    """`clean_{source}_{digest}`: the key of a clean image stored for online samples (digest: the
    first 16 hex of sha256 over the source and the path, joined by the unit separator)."""
    check_source(source)
    digest = hashlib.sha256("\x1f".join((source, relpath)).encode("utf-8")).hexdigest()[:16]
    key = f"clean_{source}_{digest}"
    if not KEY_RE.match(key):
        raise FormatError(f"key {key!r} breaks the key rule")
    return key


def clean_shard_relpath(partition: str, source: str, index: int) -> str:
    """`clean/<partition>/<source>/<source>-<000000>.tar`: outside data/, so the dataset card's
    configs (data/...) never mix clean images with samples."""
    if partition not in PARTITIONS:
        raise FormatError(f"invalid partition {partition!r}; one of {', '.join(PARTITIONS)}")
    return f"clean/{partition}/{check_source(source)}/{source}-{index:06d}.tar"


def sample_kinds(shards: pa.Table) -> pa.Table:
    """shards.parquet without its clean-image shards (format 1.2): the rows with a type."""
    if "kind" not in shards.column_names:
        return shards
    return shards.filter(pa.compute.equal(shards.column("kind"), "samples"))


def clean_kinds(shards: pa.Table) -> pa.Table:
    """shards.parquet's clean-image shards (format 1.2; none in an older or offline dataset)."""
    if "kind" not in shards.column_names:
        return shards.slice(0, 0)
    return shards.filter(pa.compute.equal(shards.column("kind"), "clean"))


def read_clean(root: str | os.PathLike) -> pa.Table:
    """manifests/clean.parquet (format 1.2): the clean images of an online dataset; empty when the
    dataset has none."""
    path = Path(root) / CLEAN
    return read_parquet(path) if path.is_file() else CLEAN_SCHEMA.empty_table()


def format_tile(tile: Sequence[int] | None) -> str:
    return "" if not tile else ",".join(str(int(v)) for v in tile)


@dataclass(frozen=True)
class Label:
    """The label of one sample (the `json` member and the label columns of samples.parquet).

    Typed and never null: HF `datasets` infers the schema from the first samples it sees.
    """

    format_version: int
    key: str
    type: str
    class_id: int
    family: str
    group: str
    partition: str
    source: str
    variant: str
    real: bool
    level: str
    params: str  # JSON object, "{}" if none
    seed: int  # -1 for captured pairs
    width: int
    height: int
    lq_source_format: str
    gt_source_format: str
    conversions: str  # JSON list of strings
    tile: str  # "" or "x,y,w,h"
    source_lq: str  # relative to the source root; "" for synthetic LQs
    source_gt: str

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                raise FormatError(f"label field {f.name} is null")
            expected = {"int": int, "bool": bool, "str": str}[f.type]
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise FormatError(f"label field {f.name}={value!r} is not {f.type}")
        t = taxonomy.get(self.type)
        if (t.class_id, t.family, t.group) != (self.class_id, self.family, self.group):
            raise FormatError(f"label of {self.key}: class id/family/group disagree with the taxonomy")
        if self.partition not in PARTITIONS:
            raise FormatError(f"label of {self.key}: invalid partition {self.partition!r}")
        if not isinstance(json.loads(self.params), dict) or not isinstance(json.loads(self.conversions), list):
            raise FormatError(f"label of {self.key}: params must be a JSON object, conversions a JSON list")

    def to_json_bytes(self) -> bytes:
        """The `json` tar member: sorted keys, compact, UTF-8."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def make_label(
    *, key: str, code: str, partition: str, source: str, variant: str, real: bool, level: str,
    params: Mapping[str, Any] | None, seed: int, width: int, height: int, lq_source_format: str,
    gt_source_format: str, conversions: Sequence[str], tile: str, source_lq: str, source_gt: str,
) -> Label:
    """A Label with the taxonomy fields filled in and params/conversions serialised canonically."""
    t = taxonomy.get(code)
    return Label(
        format_version=FORMAT_VERSION, key=key, type=code, class_id=t.class_id, family=t.family,
        group=t.group, partition=partition, source=source, variant=variant, real=bool(real),
        level=level, params=canonical_json(params or {}), seed=int(seed), width=int(width),
        height=int(height), lq_source_format=lq_source_format, gt_source_format=gt_source_format,
        conversions=canonical_json(list(conversions)), tile=tile, source_lq=source_lq, source_gt=source_gt,
    )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


json_string = _encode_basestring  # a str as canonical_json writes it (quoted, escaped, not ASCII-only)



LABEL_COLUMNS = tuple(f.name for f in fields(Label))
_ARROW = {"int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}
LABEL_SCHEMA = pa.schema([pa.field(f.name, _ARROW[f.type], nullable=False) for f in fields(Label)])
MEMBER_COLUMNS = tuple(
    f"{m.split('.')[0]}_{what}" for m in FIELDS for what in ("offset", "size")
)  # cls_offset, cls_size, gt_offset, ...: byte offset of each member's data in the tar, and length
SAMPLES_SCHEMA = pa.schema(
    list(LABEL_SCHEMA)
    + [pa.field("shard", pa.string(), nullable=False), pa.field("index", pa.int64(), nullable=False)]
    + [pa.field(c, pa.int64(), nullable=False) for c in MEMBER_COLUMNS]
    + [pa.field("lq_sha256", pa.string(), nullable=False), pa.field("gt_sha256", pa.string(), nullable=False)]
    # format 1.2: an online sample stores only its cls and json members; the loader makes its GT
    # from the clean image `clean_key` (clean.parquet) and its LQ with the degradation engine
    + [pa.field("online", pa.bool_(), nullable=False), pa.field("clean_key", pa.string(), nullable=False)]
)
SHARDS_SCHEMA = pa.schema([
    pa.field("shard", pa.string(), nullable=False),
    pa.field("partition", pa.string(), nullable=False),
    pa.field("group", pa.string(), nullable=False),
    pa.field("type", pa.string(), nullable=False),
    pa.field("class_id", pa.int64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("count", pa.int64(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False),
    # format 1.1: the source pairs (distinct LQ file, GT file, variant) whose first sample is in
    # this shard, so that a stream's shards sum to its source pairs (the repeat-sampling weight)
    pa.field("source_pairs", pa.int64(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # format 1.2: samples | clean
])
CLEAN_SCHEMA = pa.schema([  # format 1.2: one row per clean image stored for online samples
    pa.field("key", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("partition", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),  # relative to the source root (the samples' source_gt)
    pa.field("shard", pa.string(), nullable=False),
    pa.field("json_offset", pa.int64(), nullable=False),
    pa.field("json_size", pa.int64(), nullable=False),
    pa.field("png_offset", pa.int64(), nullable=False),
    pa.field("png_size", pa.int64(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False),  # of the PNG bytes
    pa.field("width", pa.int64(), nullable=False),
    pa.field("height", pa.int64(), nullable=False),
    pa.field("source_format", pa.string(), nullable=False),
    pa.field("conversions", pa.string(), nullable=False),  # JSON list, as the labels' (without "gt:")
])
REJECTS_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),  # relative to the source root
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),  # plan | decode | degrade | encode
    pa.field("type", pa.string(), nullable=False),  # the code being built, "" if none
])


def table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows -> an Arrow table of exactly `schema` (a missing or extra column is an error)."""
    rows = list(rows)
    names = set(schema.names)
    for row in rows:
        if set(row) != names:
            raise FormatError(f"row columns {sorted(set(row) ^ names)} do not match the schema")
    return pa.Table.from_pylist(rows, schema=schema)


_PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, use_dictionary=True, write_statistics=True, store_schema=True)


class ParquetSink:
    """Write a parquet file table by table (memory flat in the row count), deterministically,
    atomically (temp, fsync, rename). Rows are buffered into row groups of ROW_GROUP rows, so the
    file is the same whichever sizes the tables come in."""

    ROW_GROUP = 100_000

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, metadata: Mapping[str, str] | None = None):
        self.path = Path(path)
        if metadata:
            schema = schema.with_metadata({**(schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}})
        self.schema = schema
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def __enter__(self) -> "ParquetSink":
        self._file = atomic_open(self.path)
        self._w = pq.ParquetWriter(self._file.__enter__(), self.schema, **_PARQUET_OPTIONS)
        return self

    def write(self, tbl: pa.Table) -> None:
        if not tbl.num_rows:
            return
        self._pending.append(tbl.cast(self.schema))
        self._pending_rows += tbl.num_rows
        self.rows += tbl.num_rows
        if self._pending_rows >= self.ROW_GROUP:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        whole = table.num_rows if final else table.num_rows - table.num_rows % self.ROW_GROUP
        if whole:
            self._w.write_table(table.slice(0, whole), row_group_size=self.ROW_GROUP)
        rest = table.slice(whole)
        self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush(final=True)
            self._w.close()
        finally:
            self._file.__exit__(exc_type, exc, tb)


def write_parquet(tbl: pa.Table, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """One table to a parquet file (deterministic, atomic)."""
    with ParquetSink(path, tbl.schema, metadata) as sink:
        sink.write(tbl)


def read_parquet(path: str | os.PathLike) -> pa.Table:
    return pq.read_table(path)


def read_samples(root: str | os.PathLike) -> pa.Table:
    """samples.parquet of a built dataset, with a clear error if it is not one."""
    path = Path(root) / SAMPLES
    if not path.is_file():
        if (Path(root) / BUILD_JSON).is_file():
            raise FileNotFoundError(f"{root}: the build has not finished (no {SAMPLES} yet); rerun the build command to resume it")
        raise FileNotFoundError(f"{root}: not a UIR dataset (no {SAMPLES}); build one with `uir-build demo` or `uir-build build`")
    return read_parquet(path)


def read_shards(root: str | os.PathLike) -> pa.Table:
    path = Path(root) / SHARDS
    if not path.is_file():
        raise FileNotFoundError(f"{root}: not a UIR dataset (no {SHARDS})")
    table = read_parquet(path)
    return table if "kind" in table.column_names else with_added_columns(table, table.column_names + ["kind"])


def source_pairs(root: str | os.PathLike, partition: str = "train", shards: pa.Table | None = None) -> dict[tuple[str, str], int]:
    """Source pairs per (type, source) in one partition: distinct (LQ file, GT file, variant), so
    tiles of one pair count once. From shards.parquet's `source_pairs` (format 1.1); for a 1.0
    dataset, counted from samples.parquet one stream at a time (its rows are in shard order, a
    stream's shards adjacent), so memory is bounded by the largest stream."""
    shards = sample_kinds(read_shards(root) if shards is None else shards)
    part = shards.filter(pa.compute.equal(shards.column("partition"), partition))
    if "source_pairs" in shards.column_names:
        return {(g["type"], g["source"]): g["source_pairs"]
                for g in count_by(part.select(["type", "source", "source_pairs"]), ["type", "source"], sums=["source_pairs"])}
    wanted = set(zip(part.column("type").to_pylist(), part.column("source").to_pylist()))
    cols = ["type", "source", "partition", "source_lq", "source_gt", "variant"]
    batches = pq.ParquetFile(Path(root) / SAMPLES).iter_batches(batch_size=65_536, columns=cols)
    return {k: v for k, v in count_source_pairs(batches, partition).items() if k in wanted}


def count_source_pairs(batches, partition: str) -> dict[tuple[str, str], int]:
    """Distinct (source_lq, source_gt, variant) per (type, source) over record batches in shard
    order (a stream's rows adjacent): one stream's pairs are held at a time."""
    out: dict[tuple[str, str], int] = {}
    current, seen = None, set()
    for batch in batches:
        batch = batch.filter(pa.compute.equal(batch.column("partition"), partition))
        if not batch.num_rows:
            continue
        ids = pa.compute.binary_join_element_wise(batch.column("source_lq"), batch.column("source_gt"),
                                                  batch.column("variant"), "\x1f").to_pylist()
        for stream, pair in zip(zip(batch.column("type").to_pylist(), batch.column("source").to_pylist()), ids):
            if stream != current:  # the next stream: the last one's pairs are counted
                current, seen = stream, set()
                out.setdefault(stream, 0)
            if pair not in seen:
                seen.add(pair)
                out[stream] += 1
    return out


def read_sample_columns(root: str | os.PathLike, columns: Sequence[str]) -> pa.Table:
    """Only these columns of samples.parquet (a clear error if the dataset has none): what every
    command whose cost grows with the dataset reads, instead of the whole file."""
    path = Path(root) / SAMPLES
    if not path.is_file():
        read_samples(root)  # raises with the build's state in the message
    present = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[c for c in columns if c in present or c not in ADDED_COLUMNS])
    return with_added_columns(table, columns)


# columns added after format 1.0, and their value in a dataset written before them
ADDED_COLUMNS: dict[str, tuple[pa.DataType, Any]] = {
    "online": (pa.bool_(), False), "clean_key": (pa.string(), ""),  # samples.parquet, format 1.2
    "kind": (pa.string(), "samples"),  # shards.parquet, format 1.2
}


def with_added_columns(table: pa.Table, columns: Sequence[str] | None = None) -> pa.Table:
    """`table` with the wanted added columns (all, if `columns` is None) that it lacks filled with
    their old-format value, so readers of a 1.0/1.1 dataset see what a 1.2 one says."""
    for name in (ADDED_COLUMNS if columns is None else [c for c in columns if c in ADDED_COLUMNS]):
        if name not in table.column_names:
            kind, value = ADDED_COLUMNS[name]
            table = table.append_column(name, pa.repeat(pa.scalar(value, kind), table.num_rows))
    return table.select(list(columns)) if columns is not None else table


def count_by(table: pa.Table, keys: Sequence[str], sums: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows per distinct `keys` (`count`) and the sum of each `sums` column, computed columnar:
    one small dict per group, never one per row."""
    aggs = [([], "count_all")] + [(c, "sum") for c in sums]
    grouped = table.group_by(list(keys), use_threads=False).aggregate(aggs)
    out = grouped.rename_columns({"count_all": "count", **{f"{c}_sum": c for c in sums}}).to_pylist()
    for row in out:
        for c in sums:
            row[c] = int(row[c] or 0)
    return out


def num_rows(path: str | os.PathLike) -> int:
    """Rows of a parquet file, from its footer (nothing else is read)."""
    return pq.ParquetFile(path).metadata.num_rows


def read_build_json(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / BUILD_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{root}: no {BUILD_JSON}")
    return json.loads(path.read_text(encoding="utf-8"))


def write_build_json(root: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """root/build.json, atomically and durably: indented, keys sorted, a final newline."""
    with atomic_open(Path(root) / BUILD_JSON) as f:
        f.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
