"""A preset's selection of a built dataset as a new dataset folder: the selected (type, source)
shards (hard-linked where possible), their rows of every manifest, build.json saying what it is a
subset of, and its own card."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from uir25m import atomic, card, manifest, reader, subsets, taxonomy
from uir25m.shards import part_path


class SubsetError(ValueError):
    """A subset that cannot be made."""


def _place(src: Path, dst: Path, link: bool) -> str:
    """Hard-link (when asked and possible) or copy `src` to `dst`; returns how. Only a regular file
    itself is hard-linked: a link is copied through (its bytes read, never its target linked), so
    nothing outside the source dataset becomes part of the new folder."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link and src.is_file() and not src.is_symlink():
        try:
            os.link(src, dst)
            return "linked"
        except OSError:
            pass  # another file system, or links not allowed: copy instead
    atomic.copy_file(src, dst)
    return "copied"


def _clean_shards(src: Path, dst: Path, keys: list[pa.Array], shards: pa.Table) -> pa.Table:
    """The shards.parquet rows of the clean shards holding `keys` (whole shards, so the clean rows
    and the tars agree); their clean.parquet rows go to `dst`."""
    clean = manifest.clean_kinds(shards)
    if not clean.num_rows:
        return clean
    wanted = pc.unique(pa.concat_arrays(keys)) if keys else pa.array([], pa.string())
    table = manifest.read_clean(src)
    used = pc.unique(table.filter(pc.is_in(table.column("key"), value_set=wanted)).column("shard"))
    manifest.write_parquet(table.filter(pc.is_in(table.column("shard"), value_set=used)), dst / manifest.CLEAN)
    return clean.filter(pc.is_in(clean.column("shard"), value_set=used))


def make_subset(src: str | os.PathLike, preset: subsets.Preset, dst: str | os.PathLike, *, link: bool = False) -> dict[str, Any]:
    """Write the subset to `dst` (a new or empty folder); returns a summary."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise SubsetError(f"{dst} is not empty: a subset goes to a new folder")
    if src.resolve() == dst.resolve():
        raise SubsetError("the subset must go to another folder")
    all_shards = manifest.read_shards(src)
    reader.check_column(all_shards.column("shard"), f"{src / manifest.SHARDS}", shards=True)
    shards = manifest.sample_kinds(all_shards)
    keep = [preset.selection(t, s) is not None for t, s in zip(shards.column("type").to_pylist(),
                                                                shards.column("source").to_pylist())]  # per shard: thousands
    chosen = shards.filter(pa.array(keep, pa.bool_()))
    if not chosen.num_rows:
        present = sorted({f"{t}/{s}" for t, s in zip(shards.column("type").to_pylist(), shards.column("source").to_pylist())})
        raise SubsetError(f"{src} holds none of preset {preset.name!r}'s (type, source) pairs; it holds: {', '.join(present)}")
    paths = chosen.column("shard").to_pylist()
    how = {"linked": 0, "copied": 0}
    if not (src / manifest.SAMPLES).is_file():
        manifest.read_samples(src)  # raises, saying what the folder is
    wanted = pa.array(paths, pa.string())
    schema = pq.ParquetFile(src / manifest.SAMPLES).schema_arrow
    clean_keys = []  # the clean images the chosen online samples are made from (format 1.2)
    with manifest.ParquetSink(dst / manifest.SAMPLES, schema) as sink:  # a batch at a time: memory flat
        for batch in pq.ParquetFile(src / manifest.SAMPLES).iter_batches(batch_size=65_536):
            kept = batch.filter(pc.is_in(batch.column("shard"), value_set=wanted))
            sink.write(pa.Table.from_batches([kept]))
            if "online" in kept.schema.names:
                clean_keys.append(pc.unique(kept.filter(kept.column("online")).column("clean_key")))
    clean_shards = _clean_shards(src, dst, clean_keys, all_shards)
    for rel in paths + clean_shards.column("shard").to_pylist():
        how[_place(src / rel, dst / rel, link)] += 1
        for suffix in ("", ".rejects"):
            part = part_path(src, rel, suffix)
            if part.is_file():
                _place(part, part_path(dst, rel, suffix), link)
    manifest.write_parquet(pa.concat_tables([chosen, clean_shards]) if clean_shards.num_rows else chosen,
                           dst / manifest.SHARDS)
    rejects = manifest.read_parquet(src / manifest.REJECTS)
    types = pa.array(sorted(set(chosen.column("type").to_pylist())) + [""], pa.string())
    srcs = pa.array(sorted(set(chosen.column("source").to_pylist())), pa.string())
    keep_rej = pc.and_(pc.is_in(rejects.column("source"), value_set=srcs), pc.is_in(rejects.column("type"), value_set=types))
    manifest.write_parquet(rejects.filter(keep_rej), dst / manifest.REJECTS)
    types = set(chosen.column("type").to_pylist())
    info = manifest.read_build_json(src)
    pairs = sum(chosen.column("count").to_pylist())
    size = sum(chosen.column("bytes").to_pylist()) + sum(clean_shards.column("bytes").to_pylist())
    info["subset_of"] = {"fingerprint": info.get("fingerprint"), "path": str(src.resolve()), "preset": preset.name,
                         "select": [{"type": s.code, "sources": list(s.sources) if s.sources else "*", "ratio": s.ratio}
                                    for s in preset.select]}
    info["summary"] = {"pairs": pairs, "shards": chosen.num_rows + clean_shards.num_rows, "bytes": size, "types": len(types)}
    manifest.write_build_json(dst, info)
    card.dataset_card(dst)
    return {"from": str(src), "to": str(dst), "preset": preset.name, "pairs": pairs,
            "shards": chosen.num_rows + clean_shards.num_rows,
            "bytes": size, "types": sorted(types, key=lambda c: taxonomy.get(c).class_id), **how}
