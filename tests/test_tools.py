"""The experiment and benchmark scripts in tools/ run end to end (tiny settings), so they do not rot."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("albumentations")

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_fidelity_experiment_quick_run_reports_every_arm(tmp_path):
    r = run_tool("tools/experiment_fidelity.py", "--work", str(tmp_path / "fid"), "--quick", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["clean_images"] == {"train": 8, "test": 8}
    assert set(report["psnr"]) == {"lq", "ft_scratch", "ft_r00", "ft_r50", "ft_scratch_long"}
    for arm in report["psnr"].values():
        assert arm["count"] == 40 and set(arm["types"]) == {"h", "rs", "gn", "mb", "ll"}
        assert math.isfinite(arm["mean"])
    assert set(report["probe"]) == {"random_init", "pre_r00", "pre_r50"}
    assert all(0.0 <= a["mean"] <= 1.0 and a["n"] == 40 for a in report["probe"].values())
    assert set(report["classifier"]) == {"pre_r00", "pre_r50"}
    assert all(c["n"] == 40 and set(c["types"]) == {"h", "rs", "gn", "mb", "ll"} for c in report["classifier"].values())
    assert report["runs"]["ft_r50"]["step"] == 4 and report["runs"]["pre_r50"]["step"] == 6
    # a second invocation reuses the data and every finished run
    again = run_tool("tools/experiment_fidelity.py", "--work", str(tmp_path / "fid"), "--quick", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["psnr"] == report["psnr"]


def test_bench_train_runs_on_cpu():
    r = run_tool("tools/bench_train.py", "--archs", "nafnet_tiny", "--steps", "1", "--warmup", "1", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)["results"][0]
    assert result["arch"] == "nafnet_tiny" and result["ratio"] > 0 and result["maskdcpt_ms"] > 0


def test_bench_scale_runs_every_command_at_a_small_size(tmp_path):
    """The scale benchmark at a small N: every command runs on the synthetic manifests and verify
    checks every row of the real-tar dataset cleanly (behaviour, not time)."""
    r = run_tool("tools/bench_scale.py", "--samples", "5000", "--verify-samples", "3000", "--work", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    rows = report["sizes"]["5000"]
    assert set(rows) == {"read", "loader", "stats", "card", "shares", "subset", "merge", "plan"}
    assert rows["read"]["rows"] == rows["stats"]["pairs"] == rows["merge"]["pairs"] == 5000
    assert rows["subset"]["pairs"] > 0 and rows["plan"]["items"] == 5000
    assert all(r["peak_rss_mb"] > 0 and r["seconds"] > 0 for r in rows.values())
    real = report["real"]
    assert real["verify"]["ok"] and real["verify"]["samples"] == 3000 and real["verify"]["problems"] == 0
    assert 0 < real["worker"]["worker_private_mb"] < real["worker"]["worker_rss_mb"] and real["hash"]["bytes"] > 0
