"""The UIR format v1 spec on the manifest side: the key rule, the label schema, the parquet
schemas of samples / shards / rejects, and their deterministic I/O. `training` reads datasets
through this module only.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from uir25m import taxonomy
from uir25m.atomic import atomic_open

FORMAT_VERSION = 1
FIELDS = ("cls", "gt.png", "json", "lq.png")  # the tar members of every sample, in tar order
PARTITIONS = ("train", "test")
SOURCE_RE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")  # no hyphens: `<code>-<source>-*.tar` globs stay exact
KEY_RE = re.compile(r"^[a-z0-9_]{1,64}$")
MAX_SOURCE_LEN = 32
SAMPLES = "manifests/samples.parquet"
SHARDS = "manifests/shards.parquet"
REJECTS = "manifests/rejects.parquet"
PARTS = "manifests/parts"
BUILD_JSON = "build.json"


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
    atomically (temp, fsync, rename)."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, metadata: Mapping[str, str] | None = None):
        self.path = Path(path)
        if metadata:
            schema = schema.with_metadata({**(schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}})
        self.schema = schema
        self.rows = 0

    def __enter__(self) -> "ParquetSink":
        self._file = atomic_open(self.path)
        self._w = pq.ParquetWriter(self._file.__enter__(), self.schema, **_PARQUET_OPTIONS)
        return self

    def write(self, tbl: pa.Table) -> None:
        if tbl.num_rows:
            self._w.write_table(tbl.cast(self.schema), row_group_size=100_000)
            self.rows += tbl.num_rows

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
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
    return read_parquet(path)


def read_build_json(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / BUILD_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{root}: no {BUILD_JSON}")
    return json.loads(path.read_text(encoding="utf-8"))


def write_build_json(root: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """root/build.json, atomically and durably: indented, keys sorted, a final newline."""
    with atomic_open(Path(root) / BUILD_JSON) as f:
        f.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
