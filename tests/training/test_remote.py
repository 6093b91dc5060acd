"""Streaming a remote dataset shard by shard through the node's cache: against the loopback fake
Hub (a contract test of the Hub's read API: revision, resolve with Range) and a real S3 server
(rclone): the same batches as the local copy, one request per shard (not per sample), the cache
within its limit while the data is four times larger, retries on 429, a clear end on an outage,
reads pinned to a commit."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("albumentations")
pytest.importorskip("huggingface_hub")

from training import data as tdata  # noqa: E402
from training.data.cache import ShardCache  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from synthetic import make_real  # noqa: E402

STREAMS = [("train", "rs", "rain13k", False, 12 * 500), ("train", "ll", "lol", True, 12 * 500)]  # 24 shards of 500


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """24 shards of 500 samples (8 x 8 PNGs, LQ = 255 - GT) in two streams."""
    root = tmp_path_factory.mktemp("remote") / "ds"
    make_real(root, streams=STREAMS, size=8, distinct=True, shard_size=500)
    from uir25m import card

    card.dataset_card(root)
    return root


def hub_env(hub) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_not_a_real_token",
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_OFFLINE": "0"}


def run(script: str, hub, tmp_path, timeout=300) -> dict:
    env = {**os.environ, **hub_env(hub), "HF_HOME": str(tmp_path / "hf-home"), "UIR_REMOTE_BACKOFF": "0.01"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


DIGEST = """
import hashlib, json, os
from training.data import make_loader
def digest(loader, epochs=2):
    out = []
    for _ in range(epochs):
        for b in loader:
            out.append([b["key"], hashlib.sha256(b["lq"].numpy().tobytes() + b["gt"].numpy().tobytes()).hexdigest()])
    return out
def cached(folder):
    return sum(p.stat().st_size for p in __import__("pathlib").Path(folder).rglob("*.tar"))
"""


def test_contract_hub_shards_are_fetched_once_into_a_bounded_cache_and_give_the_local_batches(big, fake_hub, tmp_path):
    fake_hub.serve("tester/big", big)
    largest = max(p.stat().st_size for p in (big / "data").rglob("*.tar"))
    total = sum(p.stat().st_size for p in (big / "data").rglob("*.tar"))
    limit = 2 * 3 * 1 * largest  # 2 streams x 3 windows x 1 shard: the least the loader accepts
    assert total >= 4 * limit * 0.95  # the data is ~4 times the cache
    script = DIGEST + f"""
kw = dict(batch_size=8, crop=8, seed=2, num_workers=2, window=1)
remote = make_loader("hf://tester/big", cache_dir={str(tmp_path / 'cache')!r}, cache_limit={limit}, **kw)
peak = []
import threading, time
stop = False
def watch():
    while not stop:
        peak.append(cached({str(tmp_path / 'cache')!r}))
        time.sleep(0.02)
t = threading.Thread(target=watch, daemon=True); t.start()
got = digest(remote)
stop = True; t.join()
local = digest(make_loader({str(big)!r}, **kw))
print(json.dumps({{"same": got == local, "batches": len(got), "samples": 8 * len(got), "peak": max(peak),
                  "revision": remote.state_dict()["revision"]}}))
"""
    before = fake_hub.requests()
    result = run(script, fake_hub, tmp_path)
    assert result["same"] and result["batches"] > 0
    assert result["peak"] <= limit, (result["peak"], limit)
    requests = fake_hub.requests() - before
    assert requests / result["samples"] <= 1 / 100, (requests, result["samples"])
    assert result["revision"] == fake_hub.repos["tester/big"].commits[-1]["oid"]


def test_contract_hub_429_is_retried_not_a_fault(big, fake_hub, tmp_path):
    fake_hub.serve("tester/big", big)
    hits = {"n": 0}
    lock = threading.Lock()

    def hook(method, path):  # every third file request is rate-limited once
        if "/resolve/" in path and method == "GET":
            with lock:
                hits["n"] += 1
                if hits["n"] % 3 == 1:
                    return 429
        return None

    fake_hub.status_hook = hook
    script = DIGEST + f"""
kw = dict(batch_size=8, crop=8, seed=5, num_workers=0, window=1)
remote = make_loader("hf://tester/big", cache_dir={str(tmp_path / 'cache')!r}, **kw)
got = digest(remote, epochs=1)
local = digest(make_loader({str(big)!r}, **kw), epochs=1)
print(json.dumps({{"same": got == local, "faults": sum(remote.faults.values())}}))
"""
    result = run(script, fake_hub, tmp_path)
    assert result["same"] and result["faults"] == 0 and hits["n"] >= 3


@pytest.mark.parametrize("status,words", [(503, "503"), (401, "401")])
def test_contract_hub_outage_or_expired_token_ends_the_run_clearly(big, fake_hub, tmp_path, status, words):
    fake_hub.serve("tester/big", big)
    fake_hub.status_hook = lambda method, path: status if "/resolve/" in path and path.endswith(".tar") else None
    script = f"""
import json
from training.data import make_loader, FaultBudgetError
loader = make_loader("hf://tester/big", cache_dir={str(tmp_path / 'cache')!r}, batch_size=8, crop=8, num_workers=0,
                     fault_budget=3, window=1)
try:
    next(iter(loader))
    print(json.dumps({{"error": ""}}))
except FaultBudgetError as e:
    print(json.dumps({{"error": str(e)}}))
"""
    result = run(script, fake_hub, tmp_path, timeout=600)
    assert "3 samples in a row failed" in result["error"] and words in result["error"]


def test_contract_hub_reads_are_pinned_to_the_commit_resolved_at_start(big, fake_hub, tmp_path):
    first = fake_hub.serve("tester/big", big)
    script = DIGEST + f"""
kw = dict(batch_size=8, crop=8, seed=7, num_workers=0, window=1)
loader = make_loader("hf://tester/big", cache_dir={str(tmp_path / 'cache')!r}, **kw)
it = iter(loader)
head = [next(it)["key"] for _ in range(3)]
open({str(tmp_path / 'state.json')!r}, "w").write(json.dumps(loader.state_dict()))
print(json.dumps({{"revision": loader.revision}}))
"""
    assert run(script, fake_hub, tmp_path)["revision"] == first
    # another push changes every shard's bytes (and so every offset's meaning)
    import shutil

    other = tmp_path / "other"
    shutil.copytree(big, other)
    for p in (other / "data").rglob("*.tar"):
        p.write_bytes(b"\0" * p.stat().st_size)
    second = fake_hub.serve("tester/big", other)
    assert second != first
    resume = DIGEST + f"""
from training.data import make_loader
state = json.load(open({str(tmp_path / 'state.json')!r}))
out = {{}}
for url, allow in (("hf://tester/big", False), ("hf://tester/big@{first}", False), ("hf://tester/big", True)):
    loader = make_loader(url, cache_dir={str(tmp_path / 'cache2')!r}, batch_size=8, crop=8, seed=7, num_workers=0,
                         window=1, allow_revision_change=allow)
    try:
        loader.load_state_dict(state)
        out[url + str(allow)] = "resumed at " + loader.revision
    except ValueError as e:
        out[url + str(allow)] = str(e)
print(json.dumps(out))
"""
    out = run(resume, fake_hub, tmp_path)
    assert "the checkpoint read the data at revision " + first in out["hf://tester/bigFalse"]
    assert out[f"hf://tester/big@{first}False"] == "resumed at " + first
    assert out["hf://tester/bigTrue"] == "resumed at " + second


def test_a_server_that_ignores_range_is_named(big, fake_hub, tmp_path):
    fake_hub.serve("tester/big", big)
    fake_hub.ignore_range = True
    script = """
import json
from training.data import make_loader
try:
    make_loader("hf://tester/big", batch_size=8, crop=8, num_workers=0)
    print(json.dumps({"error": ""}))
except (OSError, FileNotFoundError) as e:
    print(json.dumps({"error": str(e)}))
"""
    assert "ignored the byte range" in run(script, fake_hub, tmp_path)["error"]


def test_s3_streams_shard_by_shard_through_the_cache(big, s3_server, tmp_path, monkeypatch):
    pytest.importorskip("boto3")
    from uir25m import publish

    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    publish.push(big, f"s3://{s3_server.BUCKET}/big", progress=False)
    kw = dict(batch_size=8, crop=8, seed=4, num_workers=0, window=1)
    remote = tdata.make_loader(f"s3://{s3_server.BUCKET}/big", cache_dir=str(tmp_path / "cache"), **kw)
    local = tdata.make_loader(str(big), **kw)
    a = [b["key"] for b in remote]
    assert a == [b["key"] for b in local]
    # each shard once, and the next pass's first window prefetched as the epoch ends
    assert 24 <= remote.dataset.catalog.root.cache.fetches <= 24 + 2


def test_a_cache_limit_below_what_the_loader_holds_is_refused_with_the_numbers(big, fake_hub, tmp_path):
    fake_hub.serve("tester/big", big)
    script = f"""
import json
from training.data import make_loader
try:
    make_loader("hf://tester/big", cache_dir={str(tmp_path / 'c')!r}, cache_limit=1000, batch_size=8, crop=8, num_workers=0)
    print(json.dumps({{"error": ""}}))
except ValueError as e:
    print(json.dumps({{"error": str(e)}}))
"""
    error = run(script, fake_hub, tmp_path)["error"]
    assert "cache_limit 1,000 bytes is below" in error and "2 streams x 3 windows x 2 shard(s)" in error


def test_the_cache_fetches_once_verifies_and_never_evicts_a_leased_shard(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    blobs = {f"data/s{i}.tar": bytes([i]) * 1000 for i in range(4)}
    for rel, data in blobs.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    fetched = []

    def fetch(rel, dest):
        fetched.append(rel)
        dest.write_bytes((src / rel).read_bytes())

    expected = {rel: (len(d), hashlib.sha256(d).hexdigest()) for rel, d in blobs.items()}
    a = ShardCache(tmp_path / "cache", 2500, fetch, expected)
    b = ShardCache(tmp_path / "cache", 2500, fetch, expected)  # another reader of the node
    fd, size = a.open("data/s0.tar")
    assert size == 1000 and os.pread(fd, 4, 0) == b"\0" * 4
    b.open("data/s0.tar")
    assert fetched == ["data/s0.tar"]  # fetched once for both
    b.open("data/s1.tar")
    b.release_all()  # b no longer reads s0 or s1; a still holds s0
    a.open("data/s2.tar")
    a.open("data/s3.tar")  # room for it: s1 goes (unleased, least recently used), s0 stays (leased by a)
    names = sorted(p.name for p in (tmp_path / "cache").rglob("*.tar"))
    assert names == ["s0.tar", "s2.tar", "s3.tar"] and a.used() <= 3000
    bad = ShardCache(tmp_path / "bad", 10_000, lambda rel, dest: dest.write_bytes(b"x" * 1000), expected)
    with pytest.raises(OSError, match="fetched twice and both copies has another sha256"):
        bad.open("data/s1.tar")
