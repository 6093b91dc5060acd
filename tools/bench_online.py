"""Online synthesis against stored pairs: pairs/s of the loader per type (one reader, in process)
over an offline and an `--online` demo build of the same plan, and their bytes on disk.

    python tools/bench_online.py [--size 256] [--batches 20] [--crop 128] [--json]

Prints, per type, stored and online pairs/s and their ratio (online / stored), then the bytes of
each build and their ratio. Same seed: the online batches equal the stored ones (checked)."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from training.data import make_loader
from uir25m import build, demo, taxonomy


def _rate(root: Path, code: str, batches: int, crop: int) -> tuple[float, list]:
    loader = make_loader(str(root), types=[code], batch_size=4, crop=crop, num_workers=0, seed=1)
    got, t0 = [], time.perf_counter()
    while len(got) < batches:
        for b in loader:
            got.append(b)
            if len(got) == batches:
                break
    return batches * 4 / (time.perf_counter() - t0), got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256, help="demo image size")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for online in (False, True):
            roots[online] = Path(tmp) / ("online" if online else "stored")
            build.run_build(demo.plan(demo.DemoSettings(size=a.size, per_type=8, online=online)), roots[online], progress=False)
        size = {k: sum(p.stat().st_size for p in r.rglob("*.tar")) for k, r in roots.items()}
        rows = []
        for code in taxonomy.CODES:
            stored, sb = _rate(roots[False], code, a.batches, a.crop)
            online, ob = _rate(roots[True], code, a.batches, a.crop)
            same = all(torch.equal(x["lq"], y["lq"]) and x["key"] == y["key"] for x, y in zip(sb, ob))
            rows.append({"type": code, "stored": stored, "online": online, "ratio": online / stored, "same": same})
    out = {"rows": rows, "bytes_stored": size[False], "bytes_online": size[True],
           "bytes_ratio": size[True] / size[False], "size": a.size, "crop": a.crop}
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{'type':<10} {'stored/s':>9} {'online/s':>9} {'ratio':>6} same")
    for r in rows:
        print(f"{r['type']:<10} {r['stored']:9.1f} {r['online']:9.1f} {r['ratio']:6.2f} {r['same']}")
    print(f"bytes: stored {size[False] / 1e6:.1f} MB, online {size[True] / 1e6:.1f} MB, ratio {out['bytes_ratio']:.3f}")


if __name__ == "__main__":
    main()
