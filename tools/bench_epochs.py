"""Loader wait at epoch boundaries: a consumer that spends a fixed time per step (standing in for
the GPU step) reads several epochs of a small dataset, with the next epoch's workers started early
(`overlap_epochs`, the default) and with every epoch starting its workers afresh (the baseline).

    python tools/bench_epochs.py [--data DIR] [--step-ms 375] [--epochs 4] [--workers 2] [--json]

Without --data a demo dataset (512-pixel tiles, 16 pairs per type) is built in a temporary folder.
Prints, per mode, the share of wall time spent waiting for a batch (after the first batch, whose
wait is the same in both) and the longest single wait.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(data: str, *, overlap: bool, step_ms: float, epochs: int, workers: int, batch: int, crop: int) -> dict:
    from training.data import make_loader

    loader = make_loader(data, batch_size=batch, crop=crop, num_workers=workers, seed=0, rank=0, world_size=1,
                         overlap_epochs=overlap)
    waits, total, first = [], 0.0, None
    for _ in range(epochs):
        t0 = time.perf_counter()
        for _batch in loader:
            t1 = time.perf_counter()
            if first is None:
                first = t1 - t0
            else:
                waits.append(t1 - t0)
            time.sleep(step_ms / 1000)  # the step
            total += time.perf_counter() - t0 if waits else 0.0
            t0 = time.perf_counter()
    return {"overlap": overlap, "batches_per_epoch": len(loader), "steps": len(waits),
            "wait_fraction": round(sum(waits) / total, 4), "longest_wait_ms": round(1000 * max(waits), 1),
            "first_batch_ms": round(1000 * first, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a UIR dataset folder (default: build a demo one)")
    ap.add_argument("--step-ms", type=float, default=375.0, help="simulated step time (NAFNet-w64 MaskDCPT on an H100)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data
        if data is None:
            data = str(Path(tmp) / "demo")
            subprocess.run([sys.executable, "-m", "uir25m.cli", "demo", "--out", data, "--per-type", "16", "--size",
                            "512", "--workers", str(os.cpu_count() or 1)], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        rows = [measure(data, overlap=o, step_ms=a.step_ms, epochs=a.epochs, workers=a.workers, batch=a.batch,
                        crop=a.crop) for o in (False, True)]
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": platform.python_version()}
    if a.json:
        print(json.dumps({"machine": machine, "settings": vars(a), "results": rows}, indent=2))
        return 0
    for r in rows:
        mode = "next epoch's workers started early" if r["overlap"] else "workers started afresh each epoch"
        print(f"{mode:36s} {r['steps']} steps ({r['batches_per_epoch']} per epoch) at {a.step_ms:g} ms: waiting "
              f"{100 * r['wait_fraction']:.1f} % of the time, longest wait {r['longest_wait_ms']:.0f} ms")
    base, ours = rows[0]["wait_fraction"], rows[1]["wait_fraction"]
    print(f"wait share, early start / afresh: {ours:.4f} / {base:.4f}" + (f" = {ours / base:.2f}" if base else ""))
    print(json.dumps(machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
