"""`uir-build build` and `verify` as real subprocesses: crash points, SIGKILL, resume, dry run,
verify catching a flipped byte and a missing shard, and the Ray executor."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clirun import cli
from trees import make_tree

CRASH_POINTS = ["mid_shard", "after_shard_rename", "after_part", "before_merge", "after_merge"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("buildcli")
    raw = tmp / "raw"
    for name in ("gopro", "lol", "bsd400", "cdd11", "realblur"):
        make_tree(raw, name)
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "cli", "shard_size": 2,
        "sources": [{"source": "gopro", "parts": ["train", "test"]}, {"source": "lol", "parts": "*"},
                    {"source": "bsd400", "parts": ["all"], "synthesise": ["gn", "h"]},
                    {"source": "cdd11", "parts": ["train_mixed"]}, {"source": "realblur", "parts": ["j_train"]}],
        "synthetic": {"gn": {"variants": 2, "levels": ["gaussian_15", "poisson"]}, "h": {"variants": 1, "levels": ["ots"]}},
    }))
    return tmp, raw, str(recipe)


def args(raw, recipe, out, *more):
    return ["build", "--recipe", recipe, "--root", str(raw), "--out", str(out), "--workers", "1", *more]


@pytest.fixture(scope="module")
def clean_build(raw):
    tmp, raw_, recipe = raw
    out = tmp / "clean"
    r = cli("uir-build", *args(raw_, recipe, out, "--json"))
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_build_summary(clean_build):
    out, s = clean_build
    assert s["inputs"] == s["shipped"] + s["rejected"] and s["pairs"] > 10 and s["missing_sources"] == []
    assert s["rejects_by_reason"].get("excluded_by_recipe", 0) > 0 and s["rejects_by_reason"].get("metadata") == 1


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_each_stage_then_rerun_gives_the_same_bytes(raw, clean_build, point, tmp_path, files):
    _, raw_, recipe = raw
    out = tmp_path / "out"
    r = cli("uir-build", *args(raw_, recipe, out, "--quiet"), env={"UIR_CRASH_AT": point})
    assert r.returncode == 77, r.stderr
    r = cli("uir-build", *args(raw_, recipe, out, "--json"))
    assert r.returncode == 0, r.stderr
    assert files(out) == files(clean_build[0])


def test_sigkill_then_rerun_gives_the_same_bytes(raw, clean_build, tmp_path, files):
    _, raw_, recipe = raw
    out = tmp_path / "out"
    exe = Path(sys.executable).parent / "uir-build"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "uir25m.cli"]
    proc = subprocess.Popen(cmd + args(raw_, recipe, out, "--quiet", "--shard-size", "1"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = out / "manifests" / "parts"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if parts.is_dir() and any(p.name.endswith(".parquet") and not p.name.startswith("_") for p in parts.iterdir()):
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / "manifests" / "samples.parquet").exists()  # killed mid-build
    r = cli("uir-build", *args(raw_, recipe, out, "--json", "--shard-size", "1"))
    assert r.returncode == 0, r.stderr
    again = cli("uir-build", *args(raw_, recipe, tmp_path / "ref", "--json", "--shard-size", "1"))
    assert again.returncode == 0
    assert files(out) == files(tmp_path / "ref")


def test_changed_recipe_or_seed_refuses_to_resume(raw, clean_build):
    _, raw_, recipe = raw
    out = clean_build[0]
    r = cli("uir-build", *args(raw_, recipe, out, "--seed", "5"))
    assert r.returncode == 2 and "different plan" in r.stderr
    r = cli("uir-build", *args(raw_, recipe, out, "--tile", "16"))
    assert r.returncode == 2 and "different plan" in r.stderr


def test_dry_run(raw, tmp_path):
    _, raw_, recipe = raw
    r = cli("uir-build", "build", "--recipe", recipe, "--root", str(raw_), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)["estimate"]
    assert e["tasks"] > 0 and e["est_bytes"] > 0 and e["est_wall_seconds"] > 0
    r = cli("uir-build", "build", "--recipe", recipe, "--root", str(raw_), "--dry-run")
    assert "CPU-hours" in r.stdout and "gopro" in r.stdout


def test_verify_names_a_flipped_byte_and_a_missing_shard(clean_build, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(clean_build[0], out)
    r = cli("uir-build", "verify", str(out), "--decode", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"]
    import pyarrow.parquet as pq
    shards = sorted((out / "data").rglob("*.tar"))
    victim, gone = shards[0], shards[1]
    first = next(r for r in pq.read_table(out / "manifests/samples.parquet").to_pylist() if out / r["shard"] == victim)
    data = bytearray(victim.read_bytes())
    data[first["gt_offset"] + 40] ^= 0x01  # one bit inside the first sample's GT
    victim.write_bytes(bytes(data))
    gone.unlink()
    r = cli("uir-build", "verify", str(out), "--json")
    assert r.returncode == 1
    problems = json.loads(r.stdout)["problems"]
    rel = lambda p: str(p.relative_to(out))  # noqa: E731
    assert {"shard": rel(gone), "key": "", "problem": "missing"} in problems
    assert any(p["shard"] == rel(victim) and "sha256" in p["problem"] for p in problems)
    assert {"shard": rel(victim), "key": first["key"], "problem": "gt bytes differ from their sha256"} in problems
    r = cli("uir-build", "verify", str(out))
    assert r.returncode == 1 and "missing" in r.stdout and "problem(s)" in r.stdout


def test_ray_executor_writes_the_same_bytes(raw, clean_build, tmp_path, files):
    pytest.importorskip("ray")
    _, raw_, recipe = raw
    cmd = args(raw_, recipe, tmp_path / "ray", "--executor", "ray", "--json")
    cmd[cmd.index("--workers") + 1] = "2"  # ray.init(num_cpus=2)
    r = cli("uir-build", *cmd, env={"RAY_DISABLE_USAGE_STATS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["executor"] == "ray"
    assert files(tmp_path / "ray") == files(clean_build[0])
