"""Benchmark the demo-style build against its codec floor, and 1 vs 2 workers.

    python tools/bench_build.py [--per-type 24] [--size 256] [--json]

Codec floor, measured in this run, single-threaded, on the same planned pairs:
    floor pairs/s = pairs / sum over pairs of (t_decode + t_degrade + t_encode)
where t_decode decodes the pair's source file (Pillow, as the builder), t_degrade draws the params
and applies the degradation, t_encode encodes the LQ PNG plus the GT PNG divided by the number of
pairs that share that GT (the builder encodes each GT once). The strict floor also decodes each
source file only once. The build is timed end to end (`run_build`: tasks, tars, parquet parts,
merge), after planning; with 2 workers the process start-up is included.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np


def measure_floor(plan) -> dict:
    import cv2

    from uir25m import codec, degrade

    cv2.setNumThreads(1)
    root = Path(plan.tasks[0].root)
    decode_s: dict[str, float] = {}
    decoded: dict[str, np.ndarray] = {}
    for rel in sorted({it.gt for t in plan.tasks for it in t.items}):
        data = (root / rel).read_bytes()
        t0 = time.perf_counter()
        d = codec.decode(data)
        decode_s[rel] = time.perf_counter() - t0
        decoded[rel] = d.pixels
    gt_users = Counter((it.gt, it.tile) for t in plan.tasks for it in t.items)
    gt_encode_s: dict = {}
    per_pair, degrade_total, enc_total = [], 0.0, 0.0
    for task in plan.tasks:
        for it in task.items:
            gt = codec.crop(decoded[it.gt], it.tile)
            if (it.gt, it.tile) not in gt_encode_s:
                t0 = time.perf_counter()
                codec.encode_png(gt, plan.png_level)
                gt_encode_s[(it.gt, it.tile)] = time.perf_counter() - t0
            t0 = time.perf_counter()
            params = degrade.sample(it.code, np.random.default_rng(it.seed), it.level)
            lq = degrade.apply(it.code, gt, params)
            t1 = time.perf_counter()
            codec.encode_png(lq, plan.png_level)
            t2 = time.perf_counter()
            enc = (t2 - t1) + gt_encode_s[(it.gt, it.tile)] / gt_users[(it.gt, it.tile)]
            degrade_total += t1 - t0
            enc_total += enc
            per_pair.append(decode_s[it.gt] + (t1 - t0) + enc)
    n = len(per_pair)
    strict = degrade_total + enc_total + sum(decode_s.values())
    return {
        "pairs": n, "floor_pairs_per_s": n / sum(per_pair), "strict_floor_pairs_per_s": n / strict,
        "ms_decode_per_pair": 1e3 * sum(decode_s[it.gt] for t in plan.tasks for it in t.items) / n,
        "ms_degrade_per_pair": 1e3 * degrade_total / n, "ms_encode_per_pair": 1e3 * enc_total / n,
    }


def _codec_work(items: list) -> float:
    """Degrade + encode the given (root, item) pairs in this process; returns seconds."""
    import cv2

    from uir25m import codec, degrade

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    for root, it in items:
        gt = codec.crop(codec.decode((Path(root) / it.gt).read_bytes()).pixels, it.tile)
        lq = degrade.apply(it.code, gt, degrade.sample(it.code, np.random.default_rng(it.seed), it.level))
        codec.encode_png(lq)
    return time.perf_counter() - t0


def machine_ceiling(plan, workers: int, n: int = 120) -> float:
    """How well this machine scales pure codec work (no I/O, no coordination): the same n pairs
    run in 1 process, then in `workers` processes at once; ceiling = workers x t1 / t_parallel."""
    import multiprocessing

    items = [(t.root, it) for t in plan.tasks for it in t.items][:: max(1, plan.pairs // n)][:n]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pool.map(_codec_work, [items[:2]] * workers)  # start-up and imports out of the timing
        t1 = pool.apply(_codec_work, (items,))
        t0 = time.perf_counter()
        pool.map(_codec_work, [items] * workers, chunksize=1)
        tn = time.perf_counter() - t0
    return workers * t1 / tn


def timed_build(plan, out: Path, workers: int) -> float:
    from uir25m import build

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    build.run_build(plan, out, workers=workers, mode="overwrite", progress=False)
    return time.perf_counter() - t0


def same_bytes(a: Path, b: Path) -> bool:
    files = lambda r: {str(p.relative_to(r)): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file() and p.name != "build.json"}
    return files(a) == files(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-type", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--shard-size", type=int, default=None, help="smaller shards = more tasks, for many workers")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from uir25m import demo

    plan = demo.plan(demo.DemoSettings(per_type=args.per_type, size=args.size, shard_size=args.shard_size))
    floor = measure_floor(plan)
    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    results = {}
    try:
        for w in args.workers:
            secs = timed_build(plan, tmp / f"w{w}", w)
            results[w] = {"seconds": secs, "pairs_per_s": plan.pairs / secs}
        identical = same_bytes(tmp / f"w{args.workers[0]}", tmp / f"w{args.workers[-1]}")
        ceiling = {str(w): machine_ceiling(plan, w) for w in args.workers if w > 1}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    one = results[args.workers[0]]["pairs_per_s"]
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "plan": {"pairs": plan.pairs, "shards": len(plan.tasks), "size": args.size, "per_type": args.per_type},
        "floor": floor,
        "builds": {str(w): r for w, r in results.items()},
        "ratio_to_floor_1_worker": one / floor["floor_pairs_per_s"],
        "ratio_to_strict_floor_1_worker": one / floor["strict_floor_pairs_per_s"],
        "speedup": {str(w): results[w]["pairs_per_s"] / one for w in args.workers},
        "machine_ceiling": ceiling,
        "identical_bytes_across_workers": identical,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    f = floor
    print(f"machine: {report['machine']}")
    print(f"plan: {plan.pairs} pairs in {len(plan.tasks)} shards, {args.size}px tiles, 19 types")
    print(f"codec floor: {f['floor_pairs_per_s']:.1f} pairs/s (decode {f['ms_decode_per_pair']:.2f} + degrade "
          f"{f['ms_degrade_per_pair']:.2f} + encode {f['ms_encode_per_pair']:.2f} ms per pair); "
          f"strict floor (each file decoded once) {f['strict_floor_pairs_per_s']:.1f} pairs/s")
    for w, r in results.items():
        extra = f" (this machine's ceiling for pure codec work: {ceiling[str(w)]:.2f}x)" if str(w) in ceiling else ""
        print(f"build, {w} worker(s): {r['seconds']:.2f} s, {r['pairs_per_s']:.1f} pairs/s, "
              f"{r['pairs_per_s'] / f['floor_pairs_per_s']:.2f}x floor, speedup {r['pairs_per_s'] / one:.2f}x{extra}")
    print(f"1 worker vs floor: {report['ratio_to_floor_1_worker']:.2f}x (target >= 0.8); vs strict floor "
          f"{report['ratio_to_strict_floor_1_worker']:.2f}x; identical bytes across worker counts: {identical}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
