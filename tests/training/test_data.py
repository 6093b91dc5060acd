"""The streaming loader on real shards: repeat-sampling shares, aligned crops, reader
disjointness, persistent workers, exact resume (with workers, across epochs, with faults), the
pinned batch order, bad shards, s3:// and pipe:."""
from __future__ import annotations

import collections
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("albumentations")

from training import data as tdata
from training.data.readers import Layout, SequentialCursor, Walk
from training.sampling import QuotaScheduler, deal
from uir25m import build, planner, publish
from uir25m.reader import iter_tar


def _pair(path_lq, path_gt, w, h, seed):
    from PIL import Image
    gt = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path_lq.parent.mkdir(parents=True, exist_ok=True)
    path_gt.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gt).save(path_gt)
    Image.fromarray(255 - gt).save(path_lq)  # LQ is a known pixelwise function of GT


@pytest.fixture(scope="module")
def inverted(tmp_path_factory):
    """Two streams whose LQ = 255 - GT: rs/rain13k (24 pairs, 6 shards: split by shard) and
    ll/lol (10 pairs, 3 shards: split by sample); some images are smaller than the crop."""
    tmp = tmp_path_factory.mktemp("inv")
    raw = tmp / "raw"
    for i in range(24):
        w, h = (48, 40) if i % 3 else (20, 24)
        _pair(raw / "rain13k/train/Rain13K/input" / f"{i}.png", raw / "rain13k/train/Rain13K/target" / f"{i}.png", w, h, i)
    for i in range(10):
        _pair(raw / "LOLdataset/our485/low" / f"{i}.png", raw / "LOLdataset/our485/high" / f"{i}.png", 40, 36, 100 + i)
    recipe = tmp / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "inv", "shard_size": 4, "sources": [
        {"source": "rain13k", "parts": ["train"]}, {"source": "lol", "parts": ["our485"]}]}))
    plan, _ = planner.plan(planner.BuildSettings(recipe=str(recipe), raw=str(raw)))
    build.run_build(plan, tmp / "ds", progress=False)
    return tmp / "ds"


PINNED_ORDER = "920b85c29377da19"  # sha256[:16] of two epochs' keys (test_the_batch_order_is_pinned)


def batches(loader, n=None):
    out = []
    for b in loader:
        out.append(b)
        if n is not None and len(out) == n:
            break
    return out


def same(a, b):
    assert [x["key"] for x in a] == [x["key"] for x in b]
    for x, y in zip(a, b):
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"])


def test_scheduler_shares_over_20k_draws():
    weights = [72135 * 1, 200 * 300, 5144 * 15, 2103 * 5, 485 * 60]  # the 5d preset on its sources
    s = QuotaScheduler(weights, seed=3)
    counts = collections.Counter(s.next() for _ in range(20_000))
    total = sum(weights)
    for k, w in enumerate(weights):
        assert abs(counts[k] / 20_000 - w / total) <= 0.02 * w / total
    s = QuotaScheduler([3, 1, 2], seed=0)
    seq = [s.next() for _ in range(600)]
    assert collections.Counter(seq) == {0: 300, 1: 100, 2: 200}  # exact per period of 6
    assert max(len(list(g)) for _, g in __import__("itertools").groupby(seq)) <= 2  # streams interleave
    t = QuotaScheduler([3, 1, 2], seed=0)  # no state: the same seed draws the same sequence
    assert [t.next() for _ in range(600)] == seq


def test_deal_is_disjoint_complete_and_even():
    parts = [deal(13, 4, g, seed=1) for g in range(4)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(13))
    assert sorted(len(p) for p in parts) == [3, 3, 3, 4]


@pytest.mark.parametrize("world,local,workers,n_shards", [(1, 1, 1, 5), (1, 1, 3, 5), (4, 2, 2, 6), (4, 2, 2, 1), (2, 1, 2, 3)])
def test_walks_split_every_pass_disjointly_and_completely(world, local, workers, n_shards):
    """Each pass, the readers (ranks x workers, grouped by node) read disjoint samples of a stream
    and together every sample once; a node's readers share its shards."""
    sizes = [7, 3, 5, 6, 2, 4][:n_shards]
    stream = tdata.Stream("gn", "x", 1.0, float(sum(sizes)), [f"s{j}" for j in range(n_shards)],
                          np.repeat(np.arange(n_shards), sizes).astype(np.int32))
    for p in range(3):
        seen, by_node = [], collections.defaultdict(set)
        for rank in range(world):
            for w in range(workers):
                walk = Walk(stream, Layout(rank, world, local, workers, w), seed=5, window=2)
                mine = walk.pass_positions(p).tolist()
                assert len(mine) == walk.per_pass
                seen += mine
                by_node[Layout(rank, world, local, workers, w).node] |= {int(stream.shard_id[i]) for i in mine}
        assert sorted(seen) == list(range(sum(sizes))), p
        if n_shards >= world // local:  # shards dealt to nodes: no shard is read by two nodes
            nodes = list(by_node.values())
            assert all(not (a & b) for i, a in enumerate(nodes) for b in nodes[i + 1:])


def test_batches_mix_types_and_crops_stay_aligned(inverted, caplog):
    with caplog.at_level(logging.INFO, logger="uir.data"):
        loader = tdata.make_loader(str(inverted), batch_size=6, crop=32, num_workers=0, seed=5)
    assert "of draws" in caplog.text and "ll" in caplog.text  # shares logged at start
    seen_types = set()
    for b in loader:
        assert b["lq"].shape == b["gt"].shape == (6, 3, 32, 32) and b["lq"].dtype == torch.float32
        lq = torch.round(b["lq"] * 255)
        gt = torch.round(b["gt"] * 255)
        assert torch.equal(lq + gt, torch.full_like(lq, 255.0))  # same window, flips, rot90 and padding
        assert b["class_id"].tolist() == [lab["class_id"] for lab in b["label"]]
        seen_types |= set(b["type"])
    assert seen_types == {"rs", "ll"}


def test_ratio_override_changes_shares(inverted):
    base = tdata.make_loader(str(inverted), batch_size=2, crop=16, num_workers=0).dataset.catalog.shares()
    tilted = tdata.make_loader(str(inverted), batch_size=2, crop=16, num_workers=0, ratios={"ll": 10}).dataset.catalog.shares()
    assert base["ll"] == pytest.approx(10 / 34) and tilted["ll"] == pytest.approx(100 / 124)


def test_ranks_read_disjoint_samples(inverted):
    keys = []
    for rank in range(2):
        loader = tdata.make_loader(str(inverted), batch_size=2, crop=16, num_workers=2, seed=1, rank=rank, world_size=2)
        keys.append({k for b in loader for k in b["key"]})
    assert keys[0] and keys[1] and not keys[0] & keys[1]


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_yields_exactly_the_uninterrupted_batches(inverted, workers):
    make = lambda: tdata.make_loader(str(inverted), batch_size=3, crop=16, num_workers=workers, seed=9)
    full = make()
    n = len(full)
    reference = batches(full) + batches(full)  # two epochs
    for cut in (1, n - 1, n + 2):
        first = make()
        got = []
        while len(got) < cut:
            got += batches(first, min(cut - len(got), n - first.consumed) or None)
        state = first.state_dict()
        resumed = make()
        resumed.load_state_dict(state)
        rest = []
        while len(got) + len(rest) < len(reference):
            rest += batches(resumed)
        same(got + rest, reference)


def test_workers_start_once_and_live_through_epochs(inverted):
    """No worker starts after the first epoch (the same processes serve every epoch), and the
    batches are those of a fresh loader resumed at each epoch's start."""
    import multiprocessing

    loader = tdata.make_loader(str(inverted), batch_size=2, crop=16, num_workers=2, seed=3)
    got, pids = [], []
    for _ in range(3):
        got += batches(loader)
        pids.append(sorted(p.pid for p in multiprocessing.active_children()))
    assert len(pids[0]) == 2 and pids[0] == pids[1] == pids[2]
    assert loader.epoch == 3 and loader.consumed == 0
    for epoch in range(3):
        fresh = tdata.make_loader(str(inverted), batch_size=2, crop=16, num_workers=2, seed=3)
        fresh.set_epoch(epoch)
        same(batches(fresh), got[epoch * len(loader):(epoch + 1) * len(loader)])


def test_the_batch_order_is_pinned(inverted):
    """The windowed walk's order for seed 0 (a change to it changes every run's batches: it must be
    deliberate, with a new loader-state `walk` name)."""
    import hashlib

    loader = tdata.make_loader(str(inverted), batch_size=4, crop=16, num_workers=0, seed=0)
    keys = [k for _ in range(2) for b in loader for k in b["key"]]
    assert loader.state_dict()["walk"] == "windowed-1"
    assert hashlib.sha256(" ".join(keys).encode()).hexdigest()[:16] == PINNED_ORDER, keys[:8]


def test_resume_refuses_another_configuration(inverted):
    a = tdata.make_loader(str(inverted), batch_size=3, crop=16, num_workers=0, seed=9)
    b = tdata.make_loader(str(inverted), batch_size=4, crop=16, num_workers=0, seed=9)
    with pytest.raises(ValueError, match="differ"):
        b.load_state_dict(a.state_dict())


def test_a_corrupt_and_a_missing_shard_are_skipped_counted_and_resumable(inverted, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(inverted, ds)
    tars = sorted((ds / "data/train/single/rs").glob("*.tar"))
    data = tars[0].read_bytes()
    tars[0].write_bytes(data[: len(data) // 3])  # truncated
    tars[1].unlink()  # missing
    make = lambda **kw: tdata.make_loader(str(ds), batch_size=4, crop=16, num_workers=0, seed=2, **kw)
    loader = make()
    full = batches(loader)
    assert all(len(b["key"]) == 4 for b in full)  # batches stay full: the stream's next sample stands in
    assert sum(loader.faults.values()) > 0 and any("short read" in f[-1] or "No such file" in f[-1] for f in loader.fault_log)
    cut = make()
    head = batches(cut, 3)
    resumed = make()
    resumed.load_state_dict(cut.state_dict())
    same(head + batches(resumed), full)
    with pytest.raises(tdata.StrictError):
        batches(make(strict=True))


def test_a_corrupt_image_inside_a_shard_is_skipped_and_resumable(inverted, tmp_path):
    import pyarrow.parquet as pq
    ds = tmp_path / "ds"
    shutil.copytree(inverted, ds)
    row = next(r for r in pq.read_table(ds / "manifests/samples.parquet").to_pylist() if r["type"] == "ll")
    shard = ds / row["shard"]
    data = bytearray(shard.read_bytes())
    for i in range(row["lq_offset"] + 40, row["lq_offset"] + row["lq_size"] - 20):
        data[i] ^= 0xFF  # the LQ image data is garbage; the tar is intact
    shard.write_bytes(bytes(data))
    make = lambda: tdata.make_loader(str(ds), batch_size=4, crop=16, num_workers=2, seed=6)
    loader = make()
    full = batches(loader)
    assert loader.faults.get("corrupt", 0) >= 1 and row["key"] not in {k for b in full for k in b["key"]}
    cut = make()
    head = batches(cut, 3)
    resumed = make()
    resumed.load_state_dict(cut.state_dict())
    same(head + batches(resumed), full)


def test_reads_from_a_real_s3_server(inverted, s3_server, monkeypatch):
    pytest.importorskip("boto3")
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    from uir25m import card
    card.dataset_card(inverted)
    publish.push(inverted, f"s3://{s3_server.BUCKET}/inv", progress=False)
    local = batches(tdata.make_loader(str(inverted), batch_size=4, crop=16, num_workers=2, seed=4))
    remote = batches(tdata.make_loader(f"s3://{s3_server.BUCKET}/inv", batch_size=4, crop=16, num_workers=2, seed=4))
    same(remote, local)



def test_a_remote_manifest_is_read_by_columns_not_whole(tmp_path):
    """Over ranged reads, reading some columns of a parquet file fetches the footer and those
    columns' chunks only (what one rank downloads of a remote samples.parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from training.data import urls

    rng = np.random.default_rng(0)
    n = 50_000
    table = pa.table({"key": [f"k{i:08d}" for i in range(n)], "offset": np.arange(n) * 4096,
                      "sha256": [rng.bytes(32).hex() for _ in range(n)]})  # the bulky column nobody needs
    pq.write_table(table, tmp_path / "s.parquet", compression="zstd", row_group_size=10_000)

    class Local:  # a remote root in all but name
        def size(self, rel):
            return (tmp_path / rel).stat().st_size

        def read(self, rel, offset, size):
            with open(tmp_path / rel, "rb") as f:
                f.seek(offset)
                return f.read(size)

    f = urls.RangedFile(Local(), "s.parquet")
    got = pq.ParquetFile(f, pre_buffer=True).read(columns=["key", "offset"])
    assert got.column("key").to_pylist() == table.column("key").to_pylist()
    assert 0 < f.fetched < 0.5 * f.length and 1 < f.requests <= 40


def test_reads_pipe_urls_of_bare_shards(inverted):
    urls = [f"pipe:cat {p}" for p in sorted((inverted / "data/train").rglob("*.tar"))]
    all_keys = set(__import__("pyarrow.parquet", fromlist=["x"]).read_table(inverted / "manifests/samples.parquet").column("key").to_pylist())
    make = lambda: tdata.make_loader(urls, batch_size=4, crop=16, num_workers=2, seed=3)
    loader = make()
    got = batches(loader)
    assert got and {k for b in got for k in b["key"]} <= all_keys
    for b in got:
        assert torch.equal(torch.round(b["lq"] * 255) + torch.round(b["gt"] * 255), torch.full_like(b["lq"], 255.0))
    cut = make()
    head = batches(cut, 1)
    resumed = make()
    resumed.load_state_dict(cut.state_dict())
    same(head + batches(resumed), got)


@pytest.mark.parametrize("readers", [2, 4, 8])
def test_bare_shard_readers_split_each_pass_disjointly_and_completely(inverted, readers):
    """Every reader (rank x worker) of a bare-shard stream reads its own samples, and together one
    pass covers the stream once: by whole shards (6 rain13k shards) or by sample (3 lol shards)."""
    urls = sorted(str(p) for p in (inverted / "data/train").rglob("*.tar"))
    catalog = tdata.catalog_from_shards(urls, tdata.preset_for("all"), "train")
    for k, stream in enumerate(catalog.streams):
        everything = []
        for u in stream.shards:
            with open(u, "rb") as f:
                everything += [key for key, _ in iter_tar(f, u)]
        seen = []
        for reader in range(readers):
            cursor = SequentialCursor(stream, reader, readers, seed=100 + reader, shared_seed=7 + k,
                                      endpoint_url=None, on_fault=None)
            cursor.pass_no = 0
            seen += [key for key, _ in cursor._pass()]
        assert sorted(seen) == sorted(everything), (stream.code, readers)


def test_workers_start_after_the_parent_used_opencv_threads(inverted):
    """A worker forked while the parent's OpenCV thread pool exists hangs in its first OpenCV call
    unless the loader forks with OpenCV single-threaded (found when a tool made images with cv2
    and then trained in the same process)."""
    script = f"""
import numpy as np, cv2
from training import data
cv2.resize(np.random.rand(2000, 2000, 3).astype(np.float32), (3000, 3000))  # the parent's pool starts
before = cv2.getNumThreads()
loader = data.make_loader({str(inverted)!r}, batch_size=2, crop=16, num_workers=2, seed=0)
batch = next(iter(loader))
assert batch["lq"].shape == (2, 3, 16, 16) and cv2.getNumThreads() == before
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
                       cwd=str(Path(__file__).parents[2]))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_an_in_process_loader_leaves_the_callers_settings_alone(inverted, monkeypatch):
    """num_workers=0 runs in the caller's process: its OpenCV threads and its environment stay its own."""
    import cv2
    import os

    monkeypatch.delenv("NO_ALBUMENTATIONS_UPDATE", raising=False)
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        loader = tdata.make_loader(str(inverted), batch_size=2, crop=16, num_workers=0, seed=0)
        assert next(iter(loader))["lq"].shape == (2, 3, 16, 16)
        assert cv2.getNumThreads() == 2
        assert "NO_ALBUMENTATIONS_UPDATE" not in os.environ
    finally:
        cv2.setNumThreads(before)
    # albumentations is imported once per process: look at a fresh one
    script = ("import os\nfrom training.augment import PairedCrop\nPairedCrop(16)\n"
              "assert 'NO_ALBUMENTATIONS_UPDATE' not in os.environ, 'the environment was changed'\nprint('ok')")
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                       cwd=str(Path(__file__).parents[2]))
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
