"""The shard worker on inputs the demo never has: bad files, conversions, strict mode."""
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from uir25m import build, manifest
from uir25m.executors import BuildError
from uir25m.shards import Item, chunk_stream, mark_shared_gts


def make_plan(root, names, code="gn", level="gaussian_25"):
    items = [Item(code, "mine", "train", "v0", level, False, name) for name in names]
    tasks = mark_shared_gts(chunk_stream(items, partition="train", code=code, source="mine", root=str(root), shard_size=10))
    inputs = tuple(("mine", n, os.path.getsize(root / n), 0) for n in names)
    return build.BuildPlan("t", 1, tuple(tasks), inputs, {"name": "t"}, {"seed": 1}, 3)


@pytest.fixture()
def src(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "good.png")
    Image.fromarray(rgb).convert("L").save(root / "gray image ü.png")  # spaces and non-ASCII too
    data = (root / "good.png").read_bytes()
    (root / "bad.png").write_bytes(data[: len(data) // 2])
    return root


def test_bad_input_is_rejected_with_its_reason_and_counts_reconcile(src, tmp_path):
    names = ["bad.png", "good.png", "gray image ü.png"]
    s = build.run_build(make_plan(src, names), tmp_path / "out", progress=False)
    assert s["pairs"] == 2 and s["inputs"] == 3 == s["shipped"] + s["rejected"]
    assert s["rejects_by_reason"] == {"truncated": 1}
    rej = pq.read_table(tmp_path / "out" / manifest.REJECTS).to_pylist()
    assert [(r["path"], r["reason"], r["stage"], r["type"]) for r in rej] == [("bad.png", "truncated", "decode", "gn")]
    rows = {r["source_gt"]: r for r in pq.read_table(tmp_path / "out" / manifest.SAMPLES).to_pylist()}
    assert json.loads(rows["gray image ü.png"]["conversions"]) == ["gt:gray_to_rgb"]
    assert rows["gray image ü.png"]["gt_source_format"] == "png"
    assert json.loads(rows["good.png"]["conversions"]) == []


def test_strict_mode_fails_on_the_first_bad_file_naming_it(src, tmp_path):
    with pytest.raises(ValueError, match=r"bad\.png: truncated"):
        build.run_build(make_plan(src, ["bad.png", "good.png"]), tmp_path / "out", progress=False, strict=True)


def test_a_missing_input_is_unreadable_not_lost(src, tmp_path):
    plan = make_plan(src, ["good.png", "bad.png"])
    (src / "bad.png").unlink()
    s = build.run_build(plan, tmp_path / "out", progress=False)
    assert s["rejects_by_reason"] == {"unreadable": 1} and s["shipped"] == 1


def test_failed_tasks_are_retried_then_reported(src, tmp_path, monkeypatch):
    from uir25m import shards
    calls = []

    def boom(self, task):
        calls.append(task.shard)
        raise OSError("disk full")
    monkeypatch.setattr(shards.ShardWorker, "_write", boom)
    with pytest.raises(BuildError, match=r"(?s)1 shard.*failed after 2 attempt.*gn-mine-000000.tar: OSError: disk full"):
        build.run_build(make_plan(src, ["good.png"]), tmp_path / "out", progress=False)
    assert len(calls) == 2
