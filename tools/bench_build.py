"""Benchmark the demo-style build against its codec floor, and 1 vs 2 workers.

    python tools/bench_build.py [--per-type 64] [--size 256] [--json]
    python tools/bench_build.py --ingest 400 [--ingest-size 512]      # pass-through ingest vs tar cf

The ingest's floor: `tar cf` of the same files plus the pass-through check of every PNG (every
chunk's CRC and the inflate of its image data, single-threaded), both measured in the same run.

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


def _seed(build_seed: int, it) -> int:
    """The item's per-sample seed, derived as the builder does (its key with the item's tile)."""
    from uir25m import manifest, shards

    return shards.sample_seed(build_seed, it.key(manifest.format_tile(it.tile)))


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
            params = degrade.sample(it.code, np.random.default_rng(_seed(plan.seed, it)), it.level)
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
    """Degrade + encode the given (root, item, seed) triples in this process; returns seconds."""
    import cv2

    from uir25m import codec, degrade

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    for root, it, seed in items:
        gt = codec.crop(codec.decode((Path(root) / it.gt).read_bytes()).pixels, it.tile)
        lq = degrade.apply(it.code, gt, degrade.sample(it.code, np.random.default_rng(seed), it.level))
        codec.encode_png(lq)
    return time.perf_counter() - t0


def machine_ceiling(plan, workers: int, n: int = 120) -> float:
    """How well this machine scales pure codec work (no I/O, no coordination): the same n pairs
    run in 1 process, then in `workers` processes at once; ceiling = workers x t1 / t_parallel."""
    import multiprocessing

    items = [(t.root, it, _seed(plan.seed, it)) for t in plan.tasks for it in t.items][:: max(1, plan.pairs // n)][:n]
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


def make_png_pairs(root: Path, n: int, size: int) -> None:
    """n 8-bit RGB PNG pairs of size x size in the Rain13K layout (train/Rain13K/{input,target}),
    cut from scikit-image's colour samples with noise, so no two files are alike."""
    import skimage.data

    from uir25m import codec

    base = root / "rain13k" / "train" / "Rain13K"
    (base / "input").mkdir(parents=True, exist_ok=True)
    (base / "target").mkdir(parents=True, exist_ok=True)
    pics = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.immunohistochemistry()]
    rng = np.random.default_rng(0)
    for i in range(n):
        pic = pics[i % len(pics)]
        h, w = pic.shape[:2]
        y, x = rng.integers(0, max(1, h - size)), rng.integers(0, max(1, w - size))
        clean = np.ascontiguousarray(np.resize(pic[y:y + size, x:x + size], (size, size, 3)))
        rain = np.clip(clean.astype(np.int16) + rng.integers(-20, 21, clean.shape), 0, 255).astype(np.uint8)
        (base / "target" / f"{i:05d}.png").write_bytes(codec.encode_png(clean, 1))
        (base / "input" / f"{i:05d}.png").write_bytes(codec.encode_png(rain, 1))


def bench_ingest(n: int, size: int, workers: list[int]) -> dict:
    """PNG pass-through ingest (plan + build of captured 8-bit RGB PNG pairs, no decode) against
    `tar cf` of the same files, both from a warm page cache, output to the same file system."""
    import subprocess

    from uir25m import build, planner

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        raw = tmp / "raw"
        make_png_pairs(raw, n, size)
        src = raw / "rain13k"
        nbytes = sum(p.stat().st_size for p in src.rglob("*.png"))
        recipe = tmp / "ingest.yaml"
        recipe.write_text("name: ingest\nshard_size: 200\nsources: [{source: rain13k, parts: [train]}]\n")
        subprocess.run(["tar", "cf", str(tmp / "warm.tar"), "-C", str(raw), "rain13k"], check=True)  # warm the cache
        (tmp / "warm.tar").unlink()
        import uir25m.shards  # noqa: F401  (imports out of the timing, as tar's start-up is)

        def timed(fn) -> float:
            """Median of 3 runs, each from a clean slate: no dirty pages left from before."""
            runs = []
            for _ in range(3):
                subprocess.run(["sync"], check=True)
                t0 = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t0)
            return sorted(runs)[1]

        def tar() -> None:
            subprocess.run(["tar", "cf", str(tmp / "ref.tar"), "-C", str(raw), "rain13k"], check=True)
            subprocess.run(["sync"], check=True)  # the builder fsyncs every shard: make tar durable too

        tar_s = timed(tar)
        from uir25m import codec

        files = sorted(src.rglob("*.png"))
        t0 = time.perf_counter()
        for p in files:  # what the pass-through adds to a copy: every CRC and the inflate of the image data
            codec.check_passthrough_png(p.read_bytes())
        check_s = time.perf_counter() - t0
        out = {"pairs": n, "size": size, "input_mb": nbytes / 1e6, "tar_seconds": tar_s, "tar_mb_per_s": nbytes / 1e6 / tar_s,
               "check_seconds": check_s, "floor_seconds": tar_s + check_s}
        for w in workers:
            dest = tmp / f"out{w}"

            def ingest() -> None:
                plan, _ = planner.plan(planner.BuildSettings(recipe=str(recipe), raw=str(raw)))
                summary = build.run_build(plan, dest, workers=w, mode="overwrite", progress=False)
                assert summary["pairs"] == n and summary["rejected"] == 0

            secs = timed(ingest)
            out[f"ingest_{w}"] = {"seconds": secs, "mb_per_s": nbytes / 1e6 / secs, "vs_tar": tar_s / secs,
                                  "vs_floor": (tar_s + check_s) / secs}
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-type", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--shard-size", type=int, default=None, help="smaller shards = more tasks, for many workers")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ingest", type=int, default=0, metavar="N",
                    help="instead: PNG pass-through ingest of N pairs vs tar cf over the same files")
    ap.add_argument("--ingest-size", type=int, default=512)
    args = ap.parse_args()
    if args.ingest:
        r = bench_ingest(args.ingest, args.ingest_size, args.workers)
        if args.json:
            print(json.dumps(r, indent=2))
            return 0
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"{r['pairs']} PNG pairs of {r['size']}^2, {r['input_mb']:.0f} MB: tar cf + sync {r['tar_seconds']:.2f} s "
              f"({r['tar_mb_per_s']:.0f} MB/s); checking every PNG (CRCs + inflate), 1 thread: {r['check_seconds']:.2f} s")
        for w in args.workers:
            i = r[f"ingest_{w}"]
            print(f"ingest (plan + build), {w} worker(s): {i['seconds']:.2f} s = {i['mb_per_s']:.0f} MB/s, "
                  f"{i['vs_tar']:.2f}x tar's speed (target >= 0.5), {i['vs_floor']:.2f}x the floor tar + check")
        return 0

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
