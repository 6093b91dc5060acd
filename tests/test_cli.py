"""The command lines, run as real subprocesses."""
from __future__ import annotations

import json

import pytest
from clirun import cli
from PIL import Image


SMALL_ARGS = ["--per-type", "1", "--test-per-type", "1", "--size", "64", "--seed", "3"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "demo"
    r = cli("uir-build", "demo", "--out", str(out), *SMALL_ARGS, "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_demo_prints_a_json_summary(built):
    out, s = built
    assert s["pairs"] == 38 and s["types"] == 19 and s["shards"] == 38
    assert s["inputs"] == s["shipped"] + s["rejected"]
    assert s["pairs_by_partition"] == {"test": 19, "train": 19}
    assert (out / "build.json").is_file()


def test_demo_human_summary_and_progress(tmp_path):
    r = cli("uir-build", "demo", "--out", str(tmp_path / "d"), *SMALL_ARGS)
    assert r.returncode == 0, r.stderr
    assert "38 pairs" in r.stdout and "inputs 6 = shipped" in r.stdout and "pairs/s" in r.stdout
    assert "build demo" in r.stderr  # the progress bar


def test_stats_json_shows_19_types(built):
    out, _ = built
    r = cli("uir-build", "stats", str(out), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["types"] == 19 and len(s["by_type"]) == 19 and s["by_group"] == {"single": 28, "mixed": 10}
    assert s["by_partition"] == {"train": 19, "test": 19} and s["by_source"] == {"skimage": 38}
    r = cli("uir-build", "stats", str(out))
    assert r.returncode == 0 and "ds_n_b_j" in r.stdout


def test_preview_draws_one_row_per_type(built, tmp_path):
    out, _ = built
    r = cli("uir-build", "preview", str(out), "--out", str(tmp_path / "sheet.png"), "--height", "64", "--per-type", "1")
    assert r.returncode == 0, r.stderr
    im = Image.open(tmp_path / "sheet.png")
    assert im.height == 19 * (64 + 4) and im.width > 64 * 2


def test_train_shares(built):
    out, _ = built
    r = cli("uir-train", "shares", "--data", str(out), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert len(s["shares"]) == 19 and abs(sum(s["shares"].values()) - 1) < 1e-9
    r = cli("uir-train", "shares", "--data", str(out), "--types", "gn,rs", "--ratio", "rs=3", "--json")
    shares = json.loads(r.stdout)["shares"]
    assert shares == pytest.approx({"gn": 0.25, "rs": 0.75})


def test_errors_are_clear_and_exit_2(tmp_path, built):
    r = cli("uir-build", "stats", str(tmp_path))
    assert r.returncode == 2 and "not a UIR dataset" in r.stderr and "Traceback" not in r.stderr
    r = cli("uir-train", "shares", "--data", str(built[0]), "--types", "gn,fog")
    assert r.returncode == 2 and "unknown degradation code 'fog'" in r.stderr and "valid codes" in r.stderr
    r = cli("uir-build", "demo", "--out", str(tmp_path / "x"), "--size", "3")
    assert r.returncode == 2 and "--size" in r.stderr


def test_crash_then_rerun_resumes_to_the_same_bytes(tmp_path, built, files):
    out = tmp_path / "crash"
    r = cli("uir-build", "demo", "--out", str(out), *SMALL_ARGS, "--quiet", env={"UIR_CRASH_AT": "after_shard_rename"})
    assert r.returncode == 77  # died after the first shard's rename, before its part file
    assert len(list((out / "data").rglob("*.tar"))) == 1 and not (out / "manifests" / "samples.parquet").exists()
    r = cli("uir-build", "demo", "--out", str(out), *SMALL_ARGS, "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["shards_built"] == 38 and s["shards_resumed"] == 0
    assert files(out) == files(built[0])
    r = cli("uir-build", "demo", "--out", str(out), *SMALL_ARGS[:-1], "4", "--quiet")
    assert r.returncode == 2 and "different plan" in r.stderr


def test_recipe_lists_and_shows_distributions():
    r = cli("uir-build", "recipe")
    assert r.returncode == 0 and "demo" in r.stdout.split()
    r = cli("uir-build", "recipe", "demo", "--json")
    gn = json.loads(r.stdout)["synthetic"]["gn"]["levels"]
    assert gn["gaussian"]["sigma"] == {"uniform": [1.0, 50.0]} and gn["gaussian_25"]["sigma"] == 25.0
    r = cli("uir-build", "recipe", "nope")
    assert r.returncode == 2 and "available: " in r.stderr and "demo" in r.stderr and "uir-2.5m" in r.stderr
