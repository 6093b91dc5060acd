"""Every manifest command, the loader's catalogue and the build's merge at UIR-2.5M's size.

    python tools/bench_scale.py [--samples 100000 1000000 2500000] [--verify-samples 1000000]
                                [--work DIR] [--keep] [--json]

For each N it synthesises the manifests of a finished build of N samples with the real schema
(UIR-2.5M's streams scaled to N, 1,000 samples a shard, 2 % of each stream in the test
partition; shard files empty, so only the manifest side is measured), and runs each command in a
child process of its own: wall seconds of the call, as a ratio to pyarrow reading the whole
samples.parquet in the same run, and the child's peak resident memory (VmHWM, imports included):

- read: `pyarrow.parquet.read_table(samples.parquet)` (the baseline);
- loader: `make_loader(D, subset="all", num_workers=0)` (the catalogue; torch imported);
- stats, card, shares (`uir-train shares --preset all`), subset (`--types gn,h --link`);
- merge: the build's merge of per-shard parts into the manifests and its accounting
  (inputs = shipped + rejected), on parts cut from the synthetic manifest (the plan, loaded first,
  is what the build holds anyway: its resident memory is reported beside the peak);
- plan: the planner's pairing, items, tasks and fingerprint over an in-memory index of N files.

`verify` needs real shards: at --verify-samples it writes real tars of 1-pixel PNGs (every sample
row checkable, the report clean) and measures verify on them, and the private memory a forked
loader worker holds after one batch (`/proc/<pid>/smaps_rollup`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from uir25m import manifest  # noqa: E402

from synthetic import SHARD_SIZE, make_manifest_only, make_real  # noqa: E402 (tools/ is on the path)


# --- what each child process runs ------------------------------------------------------------------

def _child(command: str, data: str, scratch: str) -> dict:
    t0 = time.perf_counter()
    out: dict = {}
    if command == "read":
        import pyarrow.parquet as pq

        out["rows"] = pq.read_table(Path(data) / manifest.SAMPLES).num_rows
    elif command == "loader":
        from training.data import make_loader

        loader = make_loader(data, subset="all", num_workers=0)
        out["streams"] = len(loader.dataset.catalog.streams)
    elif command == "stats":
        from uir25m import stats

        out["pairs"] = stats.stats(data)["pairs"]
    elif command == "card":
        from uir25m import card

        card.dataset_card(data)
    elif command == "shares":
        from uir25m import subsets

        out["streams"] = len(subsets.weights(subsets.load("all"), subsets.source_pair_counts(data, "train")))
    elif command == "subset":
        from uir25m import subsets, subsetting

        shutil.rmtree(scratch, ignore_errors=True)
        out["pairs"] = subsetting.make_subset(data, subsets.from_codes("gn,h"), scratch, link=True)["pairs"]
    elif command == "verify":
        from uir25m import verify

        r = verify.verify(data, workers=2)
        out = {"ok": r["ok"], "samples": r["samples"], "problems": len(r["problems"])}
    elif command == "merge-setup":
        out.update(_merge_setup(Path(data), Path(scratch)))
        t0 = out.pop("t0")
    elif command == "merge":
        out.update(_merge(Path(scratch)))
        t0 = out.pop("t0")
    elif command == "plan":
        out.update(_plan(int(data)))
        t0 = out.pop("t0")
    elif command == "worker":
        out.update(_worker(data))
    elif command == "hash":
        import hashlib

        total = 0
        for p in sorted((Path(data) / "data").rglob("*.tar")):
            blob = p.read_bytes()
            hashlib.sha256(blob).hexdigest()
            total += len(blob)
        out["bytes"] = total
    else:
        raise SystemExit(f"unknown command {command}")
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = _vm("VmHWM") / 1024  # this process's peak (ru_maxrss would carry the parent's over exec)
    return out


def _vm(field: str, pid: int | str = "self") -> int:
    """A /proc/<pid>/status figure in kB (VmHWM: peak resident set, VmRSS: now)."""
    return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith(field + ":"))


def _merge_setup(root: Path, scratch: Path) -> dict:
    """Per-shard parts cut from a synthetic manifest, and the plan that built them (pickled): what
    a build leaves for its merge."""
    import pickle

    import pyarrow.parquet as pq

    from uir25m import build
    from uir25m.shards import ShardTask, part_path

    shutil.rmtree(scratch, ignore_errors=True)
    samples = pq.read_table(root / manifest.SAMPLES)
    shards = pq.read_table(root / manifest.SHARDS).to_pylist()
    tasks, start = [], 0
    for s in shards:
        part = samples.slice(start, s["count"])
        start += s["count"]
        manifest.write_parquet(part, part_path(scratch, s["shard"]),
                               {"shard": s["shard"], "count": str(s["count"]), "bytes": str(s["bytes"]), "sha256": s["sha256"]})
        tasks.append(ShardTask(s["shard"], s["partition"], s["type"], s["source"], "/raw", ()))
    inputs = set()
    for source, lq, gt in zip(*(samples.column(c).to_pylist() for c in ("source", "source_lq", "source_gt"))):
        inputs.add((source, gt, 1, 1))
        if lq:
            inputs.add((source, lq, 1, 1))
    plan = build.BuildPlan(name="synthetic", seed=0, tasks=tuple(tasks), inputs=tuple(sorted(inputs)), recipe={},
                           settings={}, png_level=3)
    with open(scratch / "plan.pickle", "wb") as f:
        pickle.dump(plan, f)
    return {"t0": time.perf_counter(), "inputs": len(inputs)}


def _merge(scratch: Path) -> dict:
    """The build's merge and accounting, after loading the plan (its memory is reported apart)."""
    import pickle

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from uir25m import build

    with open(scratch / "plan.pickle", "rb") as f:
        plan = pickle.load(f)
    plan_mb = _vm("VmRSS") / 1024
    t0 = time.perf_counter()
    summary = build.merge(scratch, plan)
    assert pc.sum(pq.read_table(scratch / manifest.SHARDS).column("count")).as_py() == summary["pairs"]
    return {"t0": t0, "pairs": summary["pairs"], "inputs": summary["inputs"], "plan_rss_mb": plan_mb}


def _plan(n: int) -> dict:
    """The planner's work for N captured pairs (an in-memory index: no files to walk)."""
    from uir25m import recipes, sources
    from uir25m.planner import _source_items
    from uir25m.shards import chunk_stream, mark_shared_gts
    from uir25m.sources import FileIndex

    pairs = n
    files = sorted([f"train/Rain13K/input/{i:08d}.png" for i in range(pairs)] +
                   [f"train/Rain13K/target/{i:08d}.png" for i in range(pairs)])
    t0 = time.perf_counter()
    index = FileIndex(Path("/raw/rain13k"), files)
    spec = sources.load("rain13k")
    recipe = recipes.parse({"name": "x", "sources": [{"source": "rain13k", "parts": ["train"]}]})
    items, _, rejects = _source_items(spec, recipe.sources[0], recipe, index, 0)
    tasks = mark_shared_gts(chunk_stream(items, partition="train", code="rs", source="rain13k", root="/raw/rain13k",
                                         shard_size=SHARD_SIZE))
    from uir25m import build

    plan = build.BuildPlan(name="x", seed=0, tasks=tuple(tasks), inputs=tuple((("rain13k", f, 1, 1) for f in files)),
                           recipe={}, settings={}, png_level=3)
    fp = plan.fingerprint()
    return {"t0": t0, "items": len(items), "tasks": len(tasks), "fingerprint": fp[:8], "rejects": len(rejects)}


def _worker(data: str) -> dict:
    """Private memory of a forked loader worker after one batch, against the parent's RSS."""
    from training.data import make_loader

    loader = make_loader(data, subset="all", num_workers=1, batch_size=4, crop=8)
    import multiprocessing

    it = iter(loader)
    next(it)
    pid = multiprocessing.active_children()[0].pid  # the loader's one worker

    def private_kb(p: int | str) -> int:
        text = Path(f"/proc/{p}/smaps_rollup").read_text()
        return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(("Private_Clean", "Private_Dirty")))

    return {"worker_private_mb": private_kb(pid) / 1024, "worker_rss_mb": _vm("VmRSS", pid) / 1024,
            "parent_rss_mb": _vm("VmRSS") / 1024}


def run_child(command: str, data: Path | str, scratch: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", command, "--data", str(data), "--scratch", str(scratch)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


COMMANDS = ("read", "loader", "stats", "card", "shares", "subset", "merge")


def bench(samples: list[int], verify_samples: int, work: Path, commands=COMMANDS, plan: bool = True) -> dict:
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB, "
                         f"Python {platform.python_version()}", "sizes": {}}
    for n in samples:
        data = work / f"manifests-{n}"
        if not (data / manifest.SHARDS).is_file():
            shutil.rmtree(data, ignore_errors=True)
            make_manifest_only(data, n)
        rows = {}
        for c in commands:
            if c == "merge":
                run_child("merge-setup", data, work / f"scratch-{n}")
            rows[c] = run_child(c, data, work / f"scratch-{n}")
        if plan:
            rows["plan"] = run_child("plan", str(n), work / "scratch")
        base = rows["read"]["seconds"]
        for r in rows.values():
            r["ratio"] = r["seconds"] / base
        report["sizes"][str(n)] = rows
        shutil.rmtree(work / f"scratch-{n}", ignore_errors=True)
    if verify_samples:
        real = work / f"real-{verify_samples}"
        if not (real / manifest.SHARDS).is_file():
            shutil.rmtree(real, ignore_errors=True)
            t0 = time.perf_counter()
            make_real(real, verify_samples)
            report["real_build_seconds"] = time.perf_counter() - t0
        small = work / "real-2000"
        if not (small / manifest.SHARDS).is_file():
            shutil.rmtree(small, ignore_errors=True)
            make_real(small, 2000)
        rows = {"read": run_child("read", real, work / "scratch"), "hash": run_child("hash", real, work / "scratch"),
                "verify": run_child("verify", real, work / "scratch"), "worker": run_child("worker", real, work / "scratch"),
                "worker_small": run_child("worker", small, work / "scratch")}
        rows["verify"]["ratio"] = rows["verify"]["seconds"] / rows["read"]["seconds"]
        rows["verify"]["vs_hash"] = rows["verify"]["seconds"] / rows["hash"]["seconds"]
        report["real"] = {"samples": verify_samples, **rows}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, nargs="*", default=[100_000, 1_000_000, 2_500_000])
    ap.add_argument("--verify-samples", type=int, default=1_000_000, help="real tars for verify (0: skip)")
    ap.add_argument("--commands", nargs="+", default=list(COMMANDS))
    ap.add_argument("--no-plan", action="store_true")
    ap.add_argument("--work", help="where the synthetic datasets go (kept between runs; default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.child, a.data, a.scratch)))
        return 0
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = bench(a.samples, a.verify_samples, work, a.commands if "read" in a.commands else ["read", *a.commands],
                       plan=not a.no_plan)
    finally:
        if not a.work and not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"machine: {report['machine']}")
    for n, rows in report["sizes"].items():
        print(f"{int(n):,} samples:")
        for c, r in rows.items():
            extra = f" (the plan alone {r['plan_rss_mb']:.0f} MB)" if "plan_rss_mb" in r else ""
            print(f"  {c:<8} {r['seconds']:8.2f} s  {r['ratio']:6.2f}x read  peak {r['peak_rss_mb']:7.0f} MB{extra}")
    if "real" in report:
        r = report["real"]
        v, w, w0, h = r["verify"], r["worker"], r["worker_small"], r["hash"]
        print(f"{r['samples']:,} samples in real tars ({h['bytes'] / 1e9:.1f} GB): verify {v['seconds']:.1f} s = "
              f"{v['vs_hash']:.1f}x reading and hashing every shard once ({h['seconds']:.1f} s, 1 thread), "
              f"{v['ratio']:.1f}x reading samples.parquet; peak {v['peak_rss_mb']:.0f} MB; ok={v['ok']} "
              f"({v['problems']} problems, {v['samples']:,} rows checked)")
        print(f"a forked loader worker after one batch: {w['worker_private_mb']:.0f} MB private (RSS "
              f"{w['worker_rss_mb']:.0f} MB, parent {w['parent_rss_mb']:.0f} MB); on 2,000 samples "
              f"{w0['worker_private_mb']:.0f} MB: the catalogue adds {w['worker_private_mb'] - w0['worker_private_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
