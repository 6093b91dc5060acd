"""The streaming loader side by side with a BasicSR-style folder loader over the very same images.

    python tools/bench_stream.py [--scenarios 256-short 256-long 512-short 512-long 720p]
                                 [--workers 0 1 2] [--runs 5] [--batch 16] [--json]

For each scenario (image size, pairs, crop, epochs) the pairs are written as PNG files once; our
dataset is the untiled build of those files (their PNG bytes shipped as they are), so both
loaders decode the same bytes. Then, for each number of workers, 5 alternating runs of each
loader (ours, folder, ours, folder, ...), each run iterating the scenario's epochs after one
warm-up batch (epoch boundaries and, for the folder loader, its epoch restarts included):

- the folder loader at its best: a torch Dataset reading the LQ and GT PNG files with OpenCV
  (single-threaded), a random crop, flips, to tensors; `shuffle=True`, `persistent_workers=True`
  with workers, the same prefetch as ours;
- ours: `make_loader(D, types="rs")` (an epoch = the scenario's pairs), workers living through
  epochs.

Prints the median pairs/s of each with the spread (min-max) and the ratio of the medians, and the
decode floor (two PNG decodes and a crop per pair, one process) per worker. Short epochs (5
batches) run 20 epochs; long ones 2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass(frozen=True)
class Scenario:
    name: str
    width: int
    height: int
    pairs: int
    crop: int
    epochs: int


SCENARIOS = {
    "256-short": Scenario("256-short", 256, 256, 80, 128, 20),
    "256-long": Scenario("256-long", 256, 256, 1216, 128, 2),
    "512-short": Scenario("512-short", 512, 512, 80, 256, 20),
    "512-long": Scenario("512-long", 512, 512, 464, 256, 2),
    "720p": Scenario("720p", 1280, 720, 64, 256, 5),
}


def make_pairs(raw: Path, n: int, width: int, height: int) -> list[tuple[Path, Path]]:
    """N pairs of textured PNGs in the Rain13K layout (LQ = GT + noise), from scikit-image's samples."""
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


def _one_thread(_worker_id: int = 0) -> None:
    cv2.setNumThreads(1)


def folder_loader(pairs, crop: int, batch: int, workers: int):
    kw = {"num_workers": workers, "drop_last": True, "shuffle": True, "batch_size": batch}
    if workers:
        kw.update(persistent_workers=True, worker_init_fn=_one_thread, prefetch_factor=2)
    return torch.utils.data.DataLoader(FolderPairs(pairs, crop), **kw)


def run(loader, epochs: int) -> float:
    """Pairs per second over `epochs` epochs after one warm-up batch (its workers started)."""
    it = iter(loader)
    next(it)
    n, t0 = 0, time.perf_counter()
    for b in it:  # the rest of the first epoch
        n += len(b["lq"])
    for _ in range(epochs - 1):
        for b in loader:
            n += len(b["lq"])
    return n / (time.perf_counter() - t0)


def decode_floor(pairs, crop: int) -> float:
    """Pairs per second of two PNG decodes and a crop, from bytes in memory, one process."""
    data = [(p[0].read_bytes(), p[1].read_bytes()) for p in pairs[:64]]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for lq_b, gt_b in data:
        lq = cv2.imdecode(np.frombuffer(lq_b, np.uint8), cv2.IMREAD_COLOR)
        gt = cv2.imdecode(np.frombuffer(gt_b, np.uint8), cv2.IMREAD_COLOR)
        y, x = rng.integers(0, gt.shape[0] - crop + 1), rng.integers(0, gt.shape[1] - crop + 1)
        lq[y:y + crop, x:x + crop].copy(), gt[y:y + crop, x:x + crop].copy()
    return len(data) / (time.perf_counter() - t0)


def bench_scenario(sc: Scenario, workers: list[int], runs: int, batch: int, tmp: Path) -> dict:
    import yaml

    from training.data import make_loader
    from uir25m import build, planner

    raw = tmp / sc.name / "raw"
    pairs = make_pairs(raw, sc.pairs, sc.width, sc.height)
    recipe = tmp / sc.name / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "bench", "shard_size": 200, "sources": [{"source": "rain13k", "parts": ["train"]}]}))
    plan, _ = planner.plan(planner.BuildSettings(recipe=str(recipe), raw=str(raw), tile=0))
    build.run_build(plan, tmp / sc.name / "ds", workers=1, progress=False)
    with_one_thread = cv2.getNumThreads()
    cv2.setNumThreads(1)
    floor = decode_floor(pairs, sc.crop)
    cv2.setNumThreads(with_one_thread)
    out = {"scenario": sc.__dict__, "batches_per_epoch": sc.pairs // batch, "decode_floor": floor, "workers": {}}
    for w in workers:
        ours, folder = [], []
        for _ in range(runs):  # alternating, so a slow moment of the machine hits both alike
            ours.append(run(make_loader(str(tmp / sc.name / "ds"), types="rs", batch_size=batch, crop=sc.crop,
                                        num_workers=w, seed=0), sc.epochs))
            folder.append(run(folder_loader(pairs, sc.crop, batch, w), sc.epochs))
        o, f = statistics.median(ours), statistics.median(folder)
        out["workers"][str(w)] = {"ours": o, "ours_spread": [min(ours), max(ours)], "folder": f,
                                  "folder_spread": [min(folder), max(folder)], "ratio": o / f,
                                  "per_worker_vs_floor": o / max(1, w) / floor}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=None, help="override every scenario's pairs (a quick run)")
    ap.add_argument("--epochs", type=int, default=None, help="override every scenario's epochs (a quick run)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    import logging

    logging.getLogger("uir.data").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                         f"{platform.python_version()}, torch {torch.__version__}, OpenCV {cv2.__version__}",
              "batch": a.batch, "runs": a.runs, "scenarios": []}
    try:
        for name in a.scenarios:
            sc = SCENARIOS[name]
            if a.pairs or a.epochs:
                sc = Scenario(sc.name, sc.width, sc.height, a.pairs or sc.pairs, sc.crop, a.epochs or sc.epochs)
            report["scenarios"].append(bench_scenario(sc, a.workers, a.runs, a.batch, tmp))
            shutil.rmtree(tmp / sc.name, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"machine: {report['machine']}; batch {a.batch}, median of {a.runs} alternating runs (min-max)")
    for r in report["scenarios"]:
        sc = r["scenario"]
        print(f"{sc['name']}: {sc['pairs']} pairs of {sc['width']}x{sc['height']}, crop {sc['crop']}, "
              f"{r['batches_per_epoch']} batches an epoch x {sc['epochs']} epochs; decode floor {r['decode_floor']:.0f} pairs/s")
        for w, x in r["workers"].items():
            print(f"  {w} worker(s): ours {x['ours']:7.1f} ({x['ours_spread'][0]:.0f}-{x['ours_spread'][1]:.0f})  "
                  f"folder {x['folder']:7.1f} ({x['folder_spread'][0]:.0f}-{x['folder_spread'][1]:.0f})  "
                  f"ratio {x['ratio']:.2f}  per worker vs floor {x['per_worker_vs_floor']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
