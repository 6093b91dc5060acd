"""No state of one build leaks into the next in the same process (a notebook, reused Ray workers,
the tools), and the caller's process-wide settings are left as they were."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from uir25m import cli, codec, manifest
from uir25m.reader import read_member

NAMES = ("00001.bmp", "00002.bmp")


def wed(root, seed: int) -> dict[str, np.ndarray]:
    """WED's flat folder of BMPs (decoded and re-encoded: the cached path), pixels from `seed`."""
    folder = root / "WaterlooED"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = {}
    for name in NAMES:
        pixels[name] = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels[name]).save(folder / name)
    return pixels


def recipe(tmp_path) -> str:
    # two types from one clean image: its GT is shared by two tasks (the on-disk cache is used)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({
        "name": "twice", "shard_size": 8, "tile": 32,
        "sources": [{"source": "wed", "parts": ["all"], "synthesise": ["gn", "j"]}],
        "synthetic": {"gn": {"variants": 1, "levels": ["gaussian_25"]}, "j": {"variants": 1, "levels": ["medium"]}},
    }))
    return str(path)


def shipped_gt(out) -> list[tuple[str, str, np.ndarray]]:
    rows = pq.read_table(out / manifest.SAMPLES).to_pylist()
    return [(r["source_gt"], r["tile"], codec.imdecode(read_member(out / r["shard"], r["gt_offset"], r["gt_size"])))
            for r in rows]


def assert_gt_is(out, pixels) -> int:
    n = 0
    for gt, tile, got in shipped_gt(out):
        x, y, w, h = map(int, tile.split(","))
        assert np.array_equal(got, pixels[gt][y:y + h, x:x + w]), f"{gt} tile {tile}: GT pixels of another file"
        n += 1
    return n


def build(raw, out, rec, *extra) -> None:
    assert cli.main(["build", "--recipe", rec, "--root", str(raw), "--out", str(out), "--workers", "1",
                     "--quiet", *extra]) == 0


@pytest.mark.parametrize("same_folder", [False, True], ids=["other-folder", "rewritten-in-place"])
def test_two_builds_in_one_process_ship_each_builds_own_ground_truth(tmp_path, same_folder, capsys):
    rec = recipe(tmp_path)
    first = wed(tmp_path / "raw1", seed=1)
    build(tmp_path / "raw1", tmp_path / "out1", rec)
    raw2 = tmp_path / ("raw1" if same_folder else "raw2")
    second = wed(raw2, seed=2)  # the same source, the same file names, other pixels
    build(raw2, tmp_path / "out2", rec)
    assert assert_gt_is(tmp_path / "out1", first) == assert_gt_is(tmp_path / "out2", second) == 2 * 2 * 4


def test_a_resume_after_the_gt_files_changed_never_mixes_old_and_new_pixels(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    rec = recipe(tmp_path)
    raw, out = tmp_path / "raw", tmp_path / "out"
    wed(raw, seed=1)
    planned = {n: os.stat(raw / "WaterlooED" / n) for n in NAMES}  # what the plan's fingerprint holds
    monkeypatch.setenv("UIR_CRASH_AT", "after_part")  # one shard done, the GT cache on disk filled
    r = subprocess.run([sys.executable, "-m", "uir25m.cli", "build", "--recipe", rec, "--root", str(raw), "--out",
                        str(out), "--workers", "1", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 77, r.stderr
    monkeypatch.delenv("UIR_CRASH_AT")
    assert list((out / ".uir-cache" / "gt").glob("*.png")), "the test needs the on-disk GT cache in use"
    done = {p.name for p in (out / manifest.PARTS).glob("*.parquet")}

    # 1. the files rewritten (new mtimes): the plan's fingerprint refuses the resume
    wed(raw, seed=2)
    assert cli.main(["build", "--recipe", rec, "--root", str(raw), "--out", str(out), "--workers", "1", "--quiet"]) == 2
    assert "refusing to resume" in capsys.readouterr().err

    # 2. rewritten with the planned sizes and mtimes put back (the fingerprint cannot tell): the GT
    #    cache is keyed by the files' content ident, so the resumed shards ship the new GT their
    #    LQs were made from, never a cached encoding of the old files
    newest = wed(raw, seed=3)
    for n, st in planned.items():
        os.utime(raw / "WaterlooED" / n, ns=(st.st_atime_ns, st.st_mtime_ns))
    build(raw, out, rec)
    rows = pq.read_table(out / manifest.SAMPLES).to_pylist()
    resumed = [r for r in rows if r["shard"][:-4].replace("/", "__") + ".parquet" not in done]
    assert resumed
    for r in resumed:
        x, y, w, h = map(int, r["tile"].split(","))
        gt = codec.imdecode(read_member(out / r["shard"], r["gt_offset"], r["gt_size"]))
        assert np.array_equal(gt, newest[r["source_gt"]][y:y + h, x:x + w])


def test_a_build_in_this_process_leaves_opencv_threads_as_they_were(tmp_path, capsys):
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        wed(tmp_path / "raw", seed=1)
        build(tmp_path / "raw", tmp_path / "out", recipe(tmp_path))
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_opencv_threads_scope_restores_the_setting():
    before = cv2.getNumThreads()
    with codec.opencv_threads(1):
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == before
