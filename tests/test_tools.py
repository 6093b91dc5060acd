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


def test_bench_epochs_measures_both_loader_modes_over_the_same_steps(tmp_path):
    demo = tmp_path / "demo"
    built = subprocess.run([sys.executable, "-m", "uir25m.cli", "demo", "--out", str(demo), "--per-type", "2",
                            "--size", "128", "--workers", "1"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    r = run_tool("tools/bench_epochs.py", "--data", str(demo), "--batch", "4", "--crop", "64", "--epochs", "3",
                 "--step-ms", "5", "--workers", "2", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout)["results"]
    assert [x["overlap"] for x in results] == [False, True]
    assert results[0]["batches_per_epoch"] == 9 and results[0]["steps"] == results[1]["steps"] == 3 * 9 - 1
    assert all(0.0 < x["wait_fraction"] < 1.0 for x in results)
