"""Benchmark the streaming loader on full-size pairs against two baselines measured in the same run.

    python tools/bench_stream.py [--pairs 64] [--width 1280] [--height 720] [--crop 256] [--workers 1 2] [--json]

- decode floor: per pair, two PNG decodes (OpenCV, from bytes in memory) and a crop, one process;
- a BasicSR-style folder loader: a torch Dataset reading the LQ and GT PNG files with cv2.imread,
  one random crop window, flips, to tensors, through a DataLoader;
- our loader on untiled shards (the same PNGs, shipped byte for byte) and on shards cut into
  crop-size tiles (`uir-build build --tile`).
All loaders: batch 16, crop 256, float tensors out; throughput after one warm-up batch.
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
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_pairs(raw: Path, n: int, width: int, height: int) -> list[tuple[Path, Path]]:
    import skimage.data

    base = raw / "rain13k" / "train" / "Rain13K"
    (base / "input").mkdir(parents=True)
    (base / "target").mkdir(parents=True)
    pics = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.immunohistochemistry()]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        gt = cv2.resize(pics[i % len(pics)], (width, height), interpolation=cv2.INTER_CUBIC)
        gt = np.clip(gt.astype(np.int16) + rng.integers(-6, 7, gt.shape), 0, 255).astype(np.uint8)  # texture
        lq = np.clip(gt.astype(np.int16) + rng.integers(-25, 26, gt.shape), 0, 255).astype(np.uint8)
        paths = base / "input" / f"{i:04d}.png", base / "target" / f"{i:04d}.png"
        cv2.imwrite(str(paths[0]), lq[..., ::-1])
        cv2.imwrite(str(paths[1]), gt[..., ::-1])
        out.append(paths)
    return out


class FolderPairs(torch.utils.data.Dataset):
    """What BasicSR's PairedImageDataset does per item, minus its options dict."""

    def __init__(self, pairs, crop: int):
        self.pairs, self.crop = pairs, crop

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        cv2.setNumThreads(1)
        lq_path, gt_path = self.pairs[i]
        lq, gt = cv2.imread(str(lq_path), cv2.IMREAD_COLOR), cv2.imread(str(gt_path), cv2.IMREAD_COLOR)
        h, w = gt.shape[:2]
        y, x = np.random.randint(0, h - self.crop + 1), np.random.randint(0, w - self.crop + 1)
        lq, gt = lq[y:y + self.crop, x:x + self.crop], gt[y:y + self.crop, x:x + self.crop]
        if np.random.rand() < 0.5:
            lq, gt = lq[:, ::-1], gt[:, ::-1]
        if np.random.rand() < 0.5:
            lq, gt = lq[::-1], gt[::-1]
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a[..., ::-1].transpose(2, 0, 1))).float().div_(255.0)  # noqa: E731
        return {"lq": t(lq), "gt": t(gt)}


def throughput(loader, batches: int) -> float:
    """Pairs per second over `batches` batches after one warm-up batch (workers started)."""
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        n += len(b["lq"])
    return n / (time.perf_counter() - t0)


def decode_floor(pairs, crop: int) -> float:
    cv2.setNumThreads(1)
    data = [(p[0].read_bytes(), p[1].read_bytes()) for p in pairs]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for lq_b, gt_b in data:
        lq = cv2.imdecode(np.frombuffer(lq_b, np.uint8), cv2.IMREAD_COLOR)
        gt = cv2.imdecode(np.frombuffer(gt_b, np.uint8), cv2.IMREAD_COLOR)
        y, x = rng.integers(0, gt.shape[0] - crop + 1), rng.integers(0, gt.shape[1] - crop + 1)
        lq[y:y + crop, x:x + crop].copy(), gt[y:y + crop, x:x + crop].copy()
    return len(data) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import yaml

    from training.data import make_loader
    from uir25m import build, planner

    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    try:
        raw = tmp / "raw"
        pairs = make_pairs(raw, args.pairs, args.width, args.height)
        recipe = tmp / "r.yaml"
        recipe.write_text(yaml.safe_dump({"name": "bench", "shard_size": 16, "sources": [{"source": "rain13k", "parts": ["train"]}]}))
        for tile, out in ((0, "untiled"), (args.crop, "tiled")):
            plan, _ = planner.plan(planner.BuildSettings(recipe=str(recipe), raw=str(raw), tile=tile))
            build.run_build(plan, tmp / out, workers=2, progress=False)
        floor = decode_floor(pairs, args.crop)
        result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}",
                  "pairs": args.pairs, "size": f"{args.width}x{args.height}", "crop": args.crop, "batch": args.batch,
                  "decode_floor_pairs_per_s": floor, "workers": {}}
        for w in args.workers:
            folder = torch.utils.data.DataLoader(FolderPairs(pairs, args.crop), batch_size=args.batch, shuffle=True,
                                                 num_workers=w, drop_last=True)
            mk = lambda ds: make_loader(str(tmp / ds), types="rs", ratios={"rs": 50}, batch_size=args.batch,  # noqa: E731
                                        crop=args.crop, num_workers=w, seed=0)
            r = {"folder": throughput(folder, args.batches), "untiled": throughput(mk("untiled"), args.batches),
                 "tiled": throughput(mk("tiled"), args.batches)}
            r.update(untiled_vs_folder=r["untiled"] / r["folder"], tiled_vs_folder=r["tiled"] / r["folder"],
                     untiled_per_worker_vs_floor=r["untiled"] / w / floor)
            result["workers"][str(w)] = r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    print(f"{args.pairs} pairs of {args.width}x{args.height} PNG, crop {args.crop}, batch {args.batch}")
    print(f"decode floor (2 decodes + crop, 1 process): {floor:.1f} pairs/s")
    for w, r in result["workers"].items():
        print(f"{w} worker(s): folder loader {r['folder']:.1f} pairs/s | ours untiled {r['untiled']:.1f} "
              f"({r['untiled_vs_folder']:.2f}x folder, target >= 0.95; {r['untiled_per_worker_vs_floor']:.2f}x floor per "
              f"worker, target >= 0.8) | ours tiled {r['tiled']:.1f} ({r['tiled_vs_folder']:.2f}x folder, target >= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
