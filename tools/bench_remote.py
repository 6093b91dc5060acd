"""Streaming from the Hub and from S3 over a slow network, against the same loader on local disk.

    python tools/bench_remote.py [--shards 16] [--per-shard 512] [--size 64] [--latency 0.05]
                                 [--bandwidth 100e6] [--workers 2] [--epochs 2] [--json]

A real dataset of two streams (`--shards` shards of `--per-shard` samples each, distinct
`--size`² PNGs of natural images) is served by the loopback fake Hub (`revision` / `resolve` with Range; latency and
bandwidth injected into every request) and by a real S3 server (`rclone serve s3`) behind a proxy
that adds the same latency and bandwidth cap. The shard cache gets the least `cache_limit` the
loader accepts, so the data is several times the cache. Each loader runs `--epochs` full epochs
from `make_loader` on (every fetch included):

- samples/s, and its ratio to the same loader over the local folder (target >= 0.9);
- requests per sample, counted by the servers (target <= 1/100);
- the cache's largest size on disk while it runs, against its limit;
- the same batches as the local loader (key sequence);
- the 429 path: the Hub run again with every third file request rate-limited (Retry-After: 0).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
sys.path.append(str(HERE.parent / "tests"))  # the loopback servers the tests use

from synthetic import make_real  # noqa: E402


def _run(url: str, workers: int, epochs: int, cache: Path | None, limit: int | None, seed: int = 0) -> dict:
    from training.data import make_loader

    t0 = time.perf_counter()
    kw = {"batch_size": 16, "crop": 128, "num_workers": workers, "seed": seed, "window": 1}
    if cache is not None:
        kw.update(cache_dir=str(cache), cache_limit=limit)
    loader = make_loader(url, **kw)
    peak, stop = [0], threading.Event()

    def watch() -> None:
        while cache is not None and not stop.is_set():
            peak[0] = max(peak[0], sum(p.stat().st_size for p in cache.rglob("*.tar") if p.exists()))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    keys, n = hashlib.sha256(), 0
    for _ in range(epochs):
        for b in loader:
            keys.update(" ".join(b["key"]).encode())
            n += len(b["key"])
    seconds = time.perf_counter() - t0
    stop.set()
    watcher.join()
    return {"samples": n, "seconds": seconds, "samples_per_s": n / seconds, "keys": keys.hexdigest()[:16],
            "cache_peak": peak[0], "faults": sum(loader.faults.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=16, help="shards per stream (two streams)")
    ap.add_argument("--per-shard", type=int, default=512)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--bandwidth", type=float, default=100e6)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    import logging

    logging.getLogger("uir.data").setLevel(logging.WARNING)
    from servers import FakeHub, LatencyProxy, S3Server

    from training.data import catalog_from_dataset, preset_for
    from training.data.loader import cache_needs

    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    try:
        data = tmp / "ds"
        streams = [("train", "rs", "rain13k", False, a.shards * a.per_shard), ("train", "ll", "lol", True, a.shards * a.per_shard)]
        make_real(data, streams=streams, size=a.size, distinct=True, photos=True, shard_size=a.per_shard)
        from uir25m import card, publish

        card.dataset_card(data)
        need, _, largest = cache_needs(catalog_from_dataset(str(data), preset_for("all"), "train"), 1)
        total = sum(p.stat().st_size for p in (data / "data").rglob("*.tar"))
        report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                             f"{platform.python_version()}",
                  "data": {"shards": 2 * a.shards, "per_shard": a.per_shard, "size": a.size, "bytes": total,
                           "largest_shard": largest},
                  "network": {"latency_s": a.latency, "bandwidth": a.bandwidth}, "cache_limit": need,
                  "workers": a.workers, "epochs": a.epochs}
        report["local"] = _run(str(data), a.workers, a.epochs, None, None)
        with FakeHub(latency_s=a.latency, bandwidth=a.bandwidth) as hub:
            os.environ.update({"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_bench",
                               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(tmp / "hf-home")})
            import huggingface_hub.constants as hc

            hc.ENDPOINT = hub.url
            hub.serve("bench/remote", data)
            before = hub.requests()
            report["hub"] = _run("hf://bench/remote", a.workers, a.epochs, tmp / "cache-hub", need)
            report["hub"]["requests"] = hub.requests() - before
            state = {"n": 0}
            lock = threading.Lock()

            def hook(method, path):
                if "/resolve/" in path and path.endswith(".tar") and method == "GET":
                    with lock:
                        state["n"] += 1
                        return 429 if state["n"] % 3 == 1 else None
                return None

            hub.status_hook = hook
            os.environ["UIR_REMOTE_BACKOFF"] = "0.05"
            report["hub_429"] = _run("hf://bench/remote", a.workers, a.epochs, tmp / "cache-429", need)
            report["hub_429"]["rate_limited"] = (state["n"] + 2) // 3
        with S3Server(tmp / "s3") as s3:
            os.environ.update({**s3.env, "AWS_ENDPOINT_URL": s3.url})
            publish.push(data, f"s3://{s3.BUCKET}/remote", progress=False)
            with LatencyProxy(s3.url, a.latency, a.bandwidth) as proxy:
                os.environ["AWS_ENDPOINT_URL"] = proxy.url
                report["s3"] = _run(f"s3://{s3.BUCKET}/remote", a.workers, a.epochs, tmp / "cache-s3", need)
                report["s3"]["requests"] = proxy.requests
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    local = report["local"]
    for k in ("hub", "hub_429", "s3"):
        r = report[k]
        r["vs_local"] = r["samples_per_s"] / local["samples_per_s"]
        r["same_batches"] = r["keys"] == local["keys"]
        if "requests" in r:
            r["requests_per_sample"] = r["requests"] / r["samples"]
    if a.json:
        print(json.dumps(report, indent=2))
        return 0
    d = report["data"]
    print(f"machine: {report['machine']}; {d['shards']} shards x {d['per_shard']} samples of {d['size']}^2 "
          f"({d['bytes'] / 1e6:.0f} MB, the largest shard {d['largest_shard'] / 1e6:.1f} MB); network: "
          f"{a.latency * 1000:.0f} ms a request, {a.bandwidth / 1e6:.0f} MB/s; cache_limit {report['cache_limit'] / 1e6:.1f} MB "
          f"({d['bytes'] / report['cache_limit']:.1f}x smaller than the data); {a.workers} workers, {a.epochs} epochs")
    print(f"local     {local['samples_per_s']:8.1f} samples/s")
    for k in ("hub", "s3", "hub_429"):
        r = report[k]
        req = f", {r['requests_per_sample']:.4f} requests/sample ({r['requests']})" if "requests" in r else ""
        print(f"{k:<9} {r['samples_per_s']:8.1f} samples/s = {r['vs_local']:.2f}x local{req}; cache peak "
              f"{r['cache_peak'] / 1e6:.1f} MB; same batches: {r['same_batches']}; faults {r['faults']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
