"""Run a build plan into an output folder: resume or overwrite, execute the shard tasks, merge the
per-shard parts into the manifests, check that every input is shipped or rejected, write
build.json, and summarise (from the shard rows, so a resumed build reports the same totals)."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from uir25m import __version__, codec, degrade, executors, manifest, taxonomy
from uir25m.shards import CACHE_DIR, ShardTask, ShardWorker, TaskResult, WorkerConfig, crashpoint, is_done, part_path

MODES = ("resume", "overwrite")


class ResumeError(RuntimeError):
    """The output folder holds something a resume must not touch."""


class AccountingError(RuntimeError):
    """An input is neither shipped nor rejected: never let that pass silently."""


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build will do, fixed before any work starts."""

    name: str
    seed: int
    tasks: tuple[ShardTask, ...]  # sorted by shard path
    inputs: tuple[tuple[str, str, int, int], ...]  # (source, relpath, bytes, mtime_ns) of every input file
    recipe: Mapping[str, Any]
    settings: Mapping[str, Any]  # seed and the planner's arguments
    png_level: int
    overrides: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    plan_rejects: tuple[Mapping[str, str], ...] = ()
    locations: Mapping[str, Any] = field(default_factory=dict)  # where the sources are: recorded, not fingerprinted
    online: bool = False  # synthetic samples made by the loader from stored clean images (format 1.2)

    @property
    def pairs(self) -> int:
        return sum(len(t.items) for t in self.tasks if t.kind == "samples")

    def worker_config(self, out: str | os.PathLike, strict: bool = False) -> WorkerConfig:
        """The shard worker's settings for writing this plan into `out` (overrides as plain dicts)."""
        overrides = {k: {lk: dict(lv) for lk, lv in v.items()} for k, v in self.overrides.items()}
        return WorkerConfig(str(out), self.seed, self.png_level, overrides, strict, self.online)

    def fingerprint(self) -> str:
        """sha256 of what determines the output bytes: versions, recipe, settings, inputs, items."""
        h = hashlib.sha256()
        head = {
            "format_version": manifest.FORMAT_VERSION, "versions": library_versions(), "seed": self.seed,
            "recipe": self.recipe, "settings": self.settings, "png_level": self.png_level,
            "overrides": self.overrides, **({"online": True} if self.online else {}),
        }
        h.update(manifest.canonical_json(head).encode())
        quote = manifest.json_string
        for source, rel, size, mtime in self.inputs:  # = canonical_json([source, rel, size, mtime]), faster
            h.update(f"[{quote(source)},{quote(rel)},{int(size)},{int(mtime)}]".encode())
        for task in self.tasks:
            h.update(task.shard.encode())
            for it in task.items:
                h.update(repr((it.code, it.source, it.partition, it.variant, it.level, it.real, it.gt, it.lq, it.tile, it.tile_size)).encode())
        for rej in self.plan_rejects:
            h.update(manifest.canonical_json(dict(rej)).encode())
        return h.hexdigest()


def library_versions() -> dict[str, str]:
    import cv2
    import numpy
    import PIL
    import pyarrow
    import scipy

    return {
        "uir25m": __version__, "numpy": numpy.__version__, "opencv": cv2.__version__,
        "pillow": PIL.__version__,
        "scipy": scipy.__version__, "pyarrow": pyarrow.__version__,
    }


def _prepare(out: Path, mode: str, fingerprint: str) -> None:
    """Make `out` ready: wipe our files (overwrite) or check that a resume continues the same plan."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    build_json = out / manifest.BUILD_JSON
    ours = [out / "data", out / "manifests", build_json, out / CACHE_DIR]
    if mode == "overwrite":
        for p in ours:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    elif build_json.is_file():
        previous = json.loads(build_json.read_text(encoding="utf-8"))
        if previous.get("fingerprint") != fingerprint:
            raise ResumeError(
                f"{out} holds a build of a different plan (recipe, seed, inputs or library versions "
                f"changed: fingerprint {str(previous.get('fingerprint'))[:12]} != {fingerprint[:12]}); "
                f"refusing to resume. Use --mode overwrite to start over, or another --out."
            )
    elif any(p.exists() for p in ours[:2]):
        raise ResumeError(f"{out} has data/ or manifests/ but no build.json: not a resumable build; use --mode overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for stale in list(out.glob("data/**/.*.tmp-*")) + list(out.glob("manifests/**/.*.tmp-*")):
        stale.unlink()  # half-written files of an interrupted run


def run_build(
    plan: BuildPlan,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    mode: str = "resume",
    strict: bool = False,
    progress: bool = True,
    executor: str = "local",
    address: str | None = None,
) -> dict[str, Any]:
    """Execute `plan` into `out`; returns the closing summary (also printed by the CLI). The
    arguments are checked before anything is written to `out`."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    if executor not in executors.KINDS:
        raise ValueError(f"unknown executor {executor!r}; available: {', '.join(executors.KINDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be >= 1, not {workers!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        return _run_locked(plan, out, workers=workers, mode=mode, strict=strict, progress=progress,
                           executor=executor, address=address)


@contextlib.contextmanager
def _lock(out: Path):
    """One build per output folder at a time (a second one would delete the first's temp files)."""
    fd = os.open(out / ".uir-build.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResumeError(f"{out}: another build is running in this folder") from None
        yield
    finally:
        os.close(fd)


def _run_locked(plan: BuildPlan, out: Path, *, workers: int, mode: str, strict: bool, progress: bool,
                executor: str, address: str | None) -> dict[str, Any]:
    from tqdm import tqdm

    t0 = time.perf_counter()
    if strict:
        _fail_on_plan_rejects(plan)
    fp = plan.fingerprint()
    _prepare(out, mode, fp)
    info = {
        "format_version": manifest.FORMAT_VERSION, "format_revision": manifest.FORMAT_REVISION,
        "status": "running", "fingerprint": fp,
        "recipe": plan.recipe, "settings": plan.settings, "locations": dict(plan.locations), "versions": library_versions(),
        "encoder": codec.encoder_settings(plan.png_level), "tasks": len(plan.tasks), "pairs_planned": plan.pairs,
        # online (format 1.2): what the loader needs to make the pairs, and what its pixels depend on
        "online": {"overrides": plan.overrides, "engine": degrade.engine_versions()} if plan.online else False,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest.write_build_json(out, info)
    if plan.plan_rejects:
        manifest.write_parquet(manifest.table(plan.plan_rejects, manifest.REJECTS_SCHEMA), out / manifest.PARTS / "_plan.rejects.parquet")
    todo = [t for t in plan.tasks if not is_done(out, t)]
    worker = ShardWorker(plan.worker_config(out, strict))
    bar = tqdm(total=sum(len(t.items) for t in todo), unit="item", desc=f"build {plan.name}",
               disable=not progress, dynamic_ncols=True, mininterval=0.5)

    def on_result(r: TaskResult) -> None:
        bar.update(r.items)

    try:
        executors.run(todo, worker, kind=executor, workers=workers, on_result=on_result, address=address)
    finally:
        bar.close()
    crashpoint("before_merge")
    summary = merge(out, plan)
    crashpoint("after_merge")
    shutil.rmtree(out / CACHE_DIR, ignore_errors=True)
    seconds = time.perf_counter() - t0
    built = sum(len(t.items) for t in todo)
    summary.update(
        seconds=round(seconds, 3), shards_built=len(todo), shards_resumed=len(plan.tasks) - len(todo),
        pairs_per_s=round(built / seconds, 2) if seconds > 0 else 0.0, workers=workers, executor=executor, out=str(out),
    )
    info.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                summary={k: v for k, v in summary.items() if k not in ("out",)})
    manifest.write_build_json(out, info)
    return summary


NOT_BAD = ("excluded_by_recipe", "metadata")  # rejects that say nothing is wrong with the file


def _fail_on_plan_rejects(plan: BuildPlan) -> None:
    """Strict mode: the first bad input found while planning stops the build, naming the file."""
    for r in plan.plan_rejects:
        if r["reason"] not in NOT_BAD:
            root = plan.locations.get("roots", {}).get(r["source"], r["source"])
            raise ValueError(f"{Path(root) / r['path']}: {r['reason']}: {r['detail']}")


def merge(out: Path, plan: BuildPlan) -> dict[str, Any]:
    """Stream the parts into samples/shards/rejects (and, online, clean) .parquet in shard order,
    and check the accounting. Columnar: memory holds the shipped (source, path) columns and one
    stream's source pairs at a time, never a Python object per sample."""
    shard_rows: list[dict[str, Any]] = []
    shipped_parts: list[pa.Table] = []
    by_partition: Counter[str] = Counter()
    stream, pairs_seen = None, set()
    clean = manifest.ParquetSink(out / manifest.CLEAN, manifest.CLEAN_SCHEMA) if plan.online else contextlib.nullcontext()
    with manifest.ParquetSink(out / manifest.SAMPLES, manifest.SAMPLES_SCHEMA) as sink, clean as clean_sink:
        for task in plan.tasks:
            part = manifest.read_parquet(part_path(out, task.shard))
            meta = {k.decode(): v.decode() for k, v in (part.schema.metadata or {}).items()}
            row = {"shard": task.shard, "partition": task.partition, "source": task.source, "count": int(meta["count"]),
                   "bytes": int(meta["bytes"]), "sha256": meta["sha256"], "kind": task.kind}
            if task.kind == "clean":
                clean_sink.write(part)
                shipped_parts.append(pa.table({"source": part.column("source"), "path": part.column("path")}))
                shard_rows.append({**row, "group": "clean", "type": "", "class_id": -1, "source_pairs": 0})
                continue
            sink.write(part)
            for column in ("source_gt", "source_lq"):
                shipped_parts.append(pa.table({"source": part.column("source"), "path": part.column(column)}))
            if (task.partition, task.code, task.source) != stream:  # shards of a stream are adjacent
                stream, pairs_seen = (task.partition, task.code, task.source), set()
            before = len(pairs_seen)
            pairs_seen.update(pc.binary_join_element_wise(part.column("source_lq"), part.column("source_gt"),
                                                          part.column("variant"), "\x1f").to_pylist())
            by_partition[task.partition] += part.num_rows
            shard_rows.append({**row, "group": taxonomy.get(task.code).group, "type": task.code,
                               "class_id": taxonomy.get(task.code).class_id, "source_pairs": len(pairs_seen) - before})
    reject_tables = [manifest.read_parquet(p) for p in sorted((out / manifest.PARTS).glob("*.rejects.parquet"))]
    rejects = pa.concat_tables(reject_tables) if reject_tables else manifest.REJECTS_SCHEMA.empty_table()
    if rejects.num_rows:
        rejects = rejects.sort_by([("source", "ascending"), ("path", "ascending"), ("type", "ascending"), ("reason", "ascending")])
    manifest.write_parquet(manifest.table(shard_rows, manifest.SHARDS_SCHEMA), out / manifest.SHARDS)
    manifest.write_parquet(rejects, out / manifest.REJECTS)
    shipped = pa.concat_tables(shipped_parts) if shipped_parts else pa.table({"source": pa.array([], pa.string()),
                                                                                "path": pa.array([], pa.string())})
    return account(plan, shipped, rejects, shard_rows, by_partition)


def _keyed(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """One string per (source, path): the key the accounting compares on."""
    return pc.binary_join_element_wise(table.column("source"), table.column("path"), "\x1f")


def account(
    plan: BuildPlan, shipped: pa.Table, rejects: pa.Table, shard_rows: list[dict[str, Any]],
    by_partition: Mapping[str, int],
) -> dict[str, Any]:
    """inputs = shipped + rejected, or an AccountingError naming what went missing. `shipped`:
    the (source, path) of every shipped file (repeats allowed). Set arithmetic in pyarrow."""
    inputs = pa.table({"source": pa.array([i[0] for i in plan.inputs], pa.string()),
                       "path": pa.array([i[1] for i in plan.inputs], pa.string())})
    input_keys = pc.unique(_keyed(inputs))
    shipped_keys = pc.unique(_keyed(shipped.filter(pc.not_equal(shipped.column("path"), ""))))
    reject_keys = _keyed(rejects.select(["source", "path"]))
    rejected_keys = pc.unique(reject_keys.filter(pc.invert(pc.is_in(reject_keys, value_set=shipped_keys))))
    covered = pc.or_(pc.is_in(input_keys, value_set=shipped_keys), pc.is_in(input_keys, value_set=rejected_keys))
    missing = input_keys.filter(pc.invert(covered))
    if len(missing):
        listing = ", ".join(k.replace("\x1f", ":") for k in sorted(missing.to_pylist())[:10])
        raise AccountingError(f"{len(missing)} input(s) neither shipped nor rejected: {listing}")
    not_shipped = rejects.filter(pc.invert(pc.is_in(reject_keys, value_set=shipped_keys)))
    by_reason = {g["reason"]: g["count"] for g in manifest.count_by(not_shipped.select(["reason"]), ["reason"])}
    samples = [r for r in shard_rows if r.get("kind", "samples") == "samples"]
    return {
        "name": plan.name, "pairs": sum(r["count"] for r in samples), "shards": len(shard_rows),
        "bytes": sum(r["bytes"] for r in shard_rows), "types": len({r["type"] for r in samples}),
        "pairs_by_partition": dict(sorted(by_partition.items())),
        "inputs": len(input_keys), "shipped": pc.sum(pc.is_in(input_keys, value_set=shipped_keys)).as_py() or 0,
        "rejected": pc.sum(pc.is_in(input_keys, value_set=rejected_keys)).as_py() or 0,
        "rejects_by_reason": dict(sorted(by_reason.items())), "reject_rows": rejects.num_rows,
    }


def format_summary(s: Mapping[str, Any]) -> str:
    """The closing summary as a few human lines."""
    reasons = ", ".join(f"{k} {v}" for k, v in s["rejects_by_reason"].items()) or "none"
    parts = ", ".join(f"{k} {v}" for k, v in s["pairs_by_partition"].items())
    return (
        f"{s['name']}: {s['pairs']} pairs ({parts}) in {s['shards']} shards, {s['types']} types, "
        f"{s['bytes'] / 1e6:.1f} MB -> {s['out']}\n"
        f"inputs {s['inputs']} = shipped {s['shipped']} + rejected {s['rejected']} (rejects: {reasons})\n"
        f"{s['shards_built']} shards built, {s['shards_resumed']} kept from an earlier run; "
        f"{s['seconds']:.1f} s, {s['pairs_per_s']:.1f} pairs/s with {s['workers']} worker(s)"
    )
