"""Dry-run estimates: build a few items of every stream into a scratch folder with the real
worker, then scale their time and bytes to the whole plan."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from typing import Any

from uir25m.build import BuildPlan
from uir25m.shards import ShardTask, ShardWorker


def estimate(plan: BuildPlan, *, per_stream: int = 3, workers: int = 1) -> dict[str, Any]:
    """Per (partition, type, source) stream: items, measured samples/item, s/item and bytes/item
    from up to `per_stream` items; totals for the plan and the wall time at `workers` processes."""
    streams: dict[tuple, list[ShardTask]] = {}
    for t in plan.tasks:
        streams.setdefault((t.partition, t.code, t.source), []).append(t)
    scratch = tempfile.mkdtemp(prefix="uir-dry-run-")
    rows = []
    try:
        worker = ShardWorker(plan.worker_config(scratch))
        for (partition, code, source), tasks in sorted(streams.items()):
            items = sum(len(t.items) for t in tasks)
            probe = replace(tasks[0], items=tasks[0].items[:per_stream])
            t0 = time.perf_counter()
            result = worker(probe)
            secs = time.perf_counter() - t0
            n = max(1, len(probe.items))
            rows.append({
                "partition": partition, "type": code, "source": source, "items": items, "shards": len(tasks),
                "samples_per_item": result.count / n, "seconds_per_item": secs / n,
                "bytes_per_item": result.bytes / n, "probe_ok": result.ok, "probe_rejects": result.rejects,
                "est_samples": round(items * result.count / n), "est_bytes": round(items * result.bytes / n),
                "est_cpu_seconds": items * secs / n,
            })
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    cpu = sum(r["est_cpu_seconds"] for r in rows)
    return {
        "tasks": len(plan.tasks), "items": plan.pairs, "streams": rows,
        "est_samples": sum(r["est_samples"] for r in rows), "est_bytes": sum(r["est_bytes"] for r in rows),
        "est_cpu_seconds": cpu, "workers": workers, "est_wall_seconds": cpu / max(1, workers),
    }


def format_estimate(e: dict[str, Any]) -> list[str]:
    lines = [f"{'partition':<9} {'type':<9} {'source':<14} {'items':>8} {'shards':>6} {'samples':>9} {'GB':>8} {'cpu h':>7}"]
    for r in e["streams"]:
        lines.append(f"{r['partition']:<9} {r['type']:<9} {r['source']:<14} {r['items']:>8} {r['shards']:>6} "
                     f"{r['est_samples']:>9} {r['est_bytes'] / 1e9:>8.2f} {r['est_cpu_seconds'] / 3600:>7.2f}")
    lines.append(f"total: {e['tasks']} tasks, {e['items']} items -> about {e['est_samples']} samples, "
                 f"{e['est_bytes'] / 1e9:.2f} GB, {e['est_cpu_seconds'] / 3600:.2f} CPU-hours "
                 f"(about {e['est_wall_seconds'] / 3600:.2f} h with {e['workers']} worker(s))")
    return lines
