"""Contract tests of the Hub's read API: the loader (`hf://`) and `datasets.load_dataset` against a
loopback fake Hub that speaks `revision`, `tree`, `paths-info` and `resolve` with HTTP Range (the
fake in tests/servers.py), serving a demo dataset pushed to it by `uir-build push`. Production
reads go through the same endpoints; Xet-backed downloads are not exercised."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("albumentations")

from clirun import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def hub_env(hub) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_not_a_real_token",
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_OFFLINE": "0"}


@pytest.fixture()
def pushed(demo_dir, fake_hub, tmp_path):
    """The small demo dataset, pushed to the fake Hub as tester/demo."""
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(demo_dir, ds)
    assert cli("uir-build", "card", str(ds)).returncode == 0
    r = cli("uir-build", "push", str(ds), "--to", "hf://tester/demo", "--private", "--json", env=hub_env(fake_hub))
    assert r.returncode == 0, r.stderr[-3000:]
    return ds


def run(script: str, hub, tmp_path) -> dict:
    env = {**__import__("os").environ, **hub_env(hub), "HF_HOME": str(tmp_path / "hf-home")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_contract_hub_read_make_loader_gives_the_local_batches(pushed, fake_hub, tmp_path):
    script = f"""
import hashlib, json, torch
from training.data import make_loader
def digest(loader):
    out = []
    for _ in range(2):
        for b in loader:
            out.append([b["key"], hashlib.sha256(b["lq"].numpy().tobytes() + b["gt"].numpy().tobytes()).hexdigest(),
                        json.dumps(b["label"], sort_keys=True)])
    return out
kw = dict(batch_size=4, crop=32, seed=3, num_workers=2)
remote, local = digest(make_loader("hf://tester/demo", **kw)), digest(make_loader({str(pushed)!r}, **kw))
print(json.dumps({{"same": remote == local, "batches": len(remote)}}))
"""
    result = run(script, fake_hub, tmp_path)
    assert result["same"] and result["batches"] > 0
    assert fake_hub.requests("/resolve/") > 0  # it really read through the Hub


def test_contract_hub_read_datasets_streams_every_stored_field_intact(pushed, fake_hub, tmp_path):
    script = """
import hashlib, io, json
import datasets
out = {}
for config in ("gn", "all"):
    ds = datasets.load_dataset("tester/demo", config, split="train", streaming=True)
    for s in ds:
        buf = lambda im: im.tobytes()
        out[s["__key__"]] = [hashlib.sha256(buf(s["lq.png"])).hexdigest(), hashlib.sha256(buf(s["gt.png"])).hexdigest(),
                             s["json"], int(s["cls"]), config]
print(json.dumps(out))
"""
    got = run(script, fake_hub, tmp_path)
    import hashlib

    import numpy as np
    import pyarrow.parquet as pq

    from uir25m import codec
    from uir25m.reader import read_member

    rows = {r["key"]: r for r in pq.read_table(pushed / "manifests/samples.parquet").to_pylist() if r["partition"] == "train"}
    assert set(got) == set(rows)
    label_cols = [c for c in rows[next(iter(rows))] if c in got[next(iter(got))][2]]
    for key, (lq, gt, label, cls, _) in got.items():
        r = rows[key]
        pixels = [np.ascontiguousarray(codec.imdecode(read_member(pushed / r["shard"], r[f"{s}_offset"], r[f"{s}_size"])))
                  for s in ("lq", "gt")]
        assert [hashlib.sha256(p.tobytes()).hexdigest() for p in pixels] == [lq, gt], key
        assert {c: label[c] for c in label_cols} == {c: r[c] for c in label_cols} and cls == r["class_id"]
    assert {g[4] for g in got.values()} >= {"all"}
