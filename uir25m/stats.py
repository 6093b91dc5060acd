"""Counts of a built dataset per type, group, partition and source, from its manifests."""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from uir25m import manifest, reader, taxonomy


def stats(root: str | os.PathLike) -> dict[str, Any]:
    """Pairs and bytes per (type, partition, source), with totals per type, group, partition,
    source. Columnar: four columns of samples.parquet are read and grouped by pyarrow."""
    samples = manifest.read_sample_columns(root, ["type", "partition", "source", "real", "online"])
    shard_table = manifest.read_shards(root)
    reader.check_column(shard_table.column("shard"), os.path.join(root, manifest.SHARDS), shards=True)
    sample_shards, clean_shards = manifest.sample_kinds(shard_table), manifest.clean_kinds(shard_table)
    rejects = manifest.num_rows(os.path.join(root, manifest.REJECTS))
    rows: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"pairs": 0, "real": 0, "online": 0, "bytes": 0, "shards": 0})
    for g in manifest.count_by(samples, ["type", "partition", "source"], sums=["real", "online"]):
        rows[(g["type"], g["partition"], g["source"])].update(pairs=g["count"], real=g["real"], online=g["online"])
    for g in manifest.count_by(sample_shards.select(["type", "partition", "source", "bytes"]), ["type", "partition", "source"],
                               sums=["bytes"]):
        rows[(g["type"], g["partition"], g["source"])].update(bytes=g["bytes"], shards=g["count"])
    table = [
        {"type": t, "class_id": taxonomy.get(t).class_id, "group": taxonomy.get(t).group, "partition": p,
         "source": s, **v}
        for (t, p, s), v in sorted(rows.items(), key=lambda kv: (taxonomy.get(kv[0][0]).class_id, kv[0][1], kv[0][2]))
    ]

    def total(field: str) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for r in table:
            out[r[field]] += r["pairs"]
        return dict(out)

    return {
        "root": str(root), "pairs": samples.num_rows, "shards": shard_table.num_rows,
        "bytes": sum(shard_table.column("bytes").to_pylist()), "types": len(total("type")), "by_type": total("type"),
        "by_group": total("group"), "by_partition": total("partition"), "by_source": total("source"),
        "rejects": rejects, "rows": table,
        # format 1.2: samples the loader makes from stored clean images, and those images' shards
        "online": sum(r["online"] for r in table), "clean_shards": clean_shards.num_rows,
        "clean_bytes": sum(clean_shards.column("bytes").to_pylist()),
    }


def format_stats(s: dict[str, Any]) -> str:
    """A fixed-width table, one line per (type, partition, source)."""
    lines = [f"{s['root']}: {s['pairs']} pairs, {s['types']} types, {s['shards']} shards, "
             f"{s['bytes'] / 1e6:.1f} MB, {s['rejects']} reject rows",
             *([f"online: {s['online']} pairs made by the loader from {s['clean_shards']} clean shard(s), "
                f"{s['clean_bytes'] / 1e6:.1f} MB"] if s.get("clean_shards") else []),
             f"{'id':>3} {'type':<9} {'group':<7} {'partition':<9} {'source':<16} {'pairs':>8} {'real':>6} {'MB':>9}"]
    for r in s["rows"]:
        lines.append(f"{r['class_id']:>3} {r['type']:<9} {r['group']:<7} {r['partition']:<9} {r['source']:<16} "
                     f"{r['pairs']:>8} {r['real']:>6} {r['bytes'] / 1e6:>9.2f}")
    lines.append("by group: " + ", ".join(f"{k} {v}" for k, v in sorted(s["by_group"].items())))
    lines.append("by partition: " + ", ".join(f"{k} {v}" for k, v in sorted(s["by_partition"].items())))
    return "\n".join(lines)
