"""Bad input never disappears silently: each kind is normalised (conversion in the label) or
rejected with its reason, and inputs = shipped + rejected. Built on the Rain13K layout
(train/Rain13K/{input,target}, equal names, any extension)."""
from __future__ import annotations

import io
import json
import os
import shutil

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from uir25m import build, manifest, planner

RNG = np.random.default_rng(1)


def rgb(w=12, h=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png(arr, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, "PNG")
    return buf.getvalue()


def jpeg(arr, mode="RGB", exif=None) -> bytes:
    buf = io.BytesIO()
    kw = {"exif": exif} if exif else {}
    Image.fromarray(arr).convert(mode).save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def build_tree(raw):
    base = raw / "rain13k" / "train" / "Rain13K"
    lq, gt = base / "input", base / "target"
    lq.mkdir(parents=True)
    gt.mkdir(parents=True)

    def pair(name, lq_bytes, gt_bytes):
        (lq / name).write_bytes(lq_bytes)
        (gt / name).write_bytes(gt_bytes)

    good = png(rgb(seed=1)), png(rgb(seed=2))
    pair("good.png", *good)
    pair("good_copy.png", *good)                         # same bytes as good.png: a duplicate pair
    pair("name with spaces ü.png", png(rgb(seed=3)), png(rgb(seed=4)))
    full = png(rgb(seed=5))
    pair("truncated.png", full[: len(full) // 2], png(rgb(seed=6)))
    pair("zero.png", b"", png(rgb(seed=7)))
    pair("text.png", b"this is not an image", png(rgb(seed=8)))
    pair("mismatch.png", png(rgb(12, 10, seed=9)), png(rgb(10, 10, seed=10)))
    (lq / "orphan_lq.png").write_bytes(png(rgb(seed=11)))
    (gt / "orphan_gt.png").write_bytes(png(rgb(seed=12)))
    deep = (rgb(seed=13).astype(np.uint16) * 257)[..., ::-1]
    pair("deep16.png", cv2.imencode(".png", deep)[1].tobytes(), png(rgb(seed=14)))
    pair("gray.png", png(rgb(seed=15), "L"), png(rgb(seed=16), "L"))
    pair("rgba.png", png(rgb(seed=17), "RGBA"), png(rgb(seed=18)))
    pair("palette.png", png(rgb(seed=19), "P"), png(rgb(seed=20)))
    pair("cmyk.jpg", jpeg(rgb(seed=21), "CMYK"), jpeg(rgb(seed=22), "CMYK"))
    exif = Image.Exif()
    exif[0x0112] = 6
    pair("rotated.jpg", jpeg(rgb(seed=23), exif=exif.tobytes()), jpeg(rgb(seed=24), exif=exif.tobytes()))
    pair("bomb.png", png(rgb(40, 40, seed=25)), png(rgb(40, 40, seed=26)))
    (lq / "locked").mkdir()
    (lq / "locked" / "hidden.png").write_bytes(png(rgb(seed=27)))
    fd = os.open(bytes(lq) + b"/bad-\xff-name.png", os.O_WRONLY | os.O_CREAT)
    os.write(fd, png(rgb(seed=28)))
    os.close(fd)
    return base


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    build_tree(raw)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "bad", "sources": [{"source": "rain13k", "parts": ["train"]}]}))
    real_scandir = os.scandir

    def scandir(path="."):  # one folder the build may not read (root reads everything otherwise)
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 40 x 40 = 1,600 > 2 x 500: a "bomb"
    return tmp_path, str(recipe), raw


def test_each_kind_of_bad_input_is_normalised_or_rejected(tree):
    tmp, recipe, raw = tree
    plan, report = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw)))
    s = build.run_build(plan, tmp / "out", progress=False)
    rows = {r["source_lq"].split("/")[-1]: r for r in pq.read_table(tmp / "out" / manifest.SAMPLES).to_pylist()}
    rej = {}
    for r in pq.read_table(tmp / "out" / manifest.REJECTS).to_pylist():
        rej.setdefault(r["path"].replace("train/Rain13K/", ""), set()).add(r["reason"])
    # normalised, with the conversion in the label
    conv = {name: json.loads(rows[name]["conversions"]) for name in rows}
    assert conv["good.png"] == [] and conv["name with spaces ü.png"] == []
    assert conv["deep16.png"] == ["lq:16bit_to_8bit"]
    assert conv["gray.png"] == ["lq:gray_to_rgb", "gt:gray_to_rgb"]
    assert conv["rgba.png"] == ["lq:alpha_dropped"]
    assert conv["palette.png"] == ["lq:palette_to_rgb"]
    assert conv["cmyk.jpg"] == ["lq:cmyk_to_rgb", "gt:cmyk_to_rgb"]
    assert conv["rotated.jpg"] == ["lq:exif_orientation_6_applied", "gt:exif_orientation_6_applied"]
    assert (rows["rotated.jpg"]["width"], rows["rotated.jpg"]["height"]) == (10, 12)
    assert set(rows) == {"good.png", "name with spaces ü.png", "deep16.png", "gray.png", "rgba.png", "palette.png",
                         "cmyk.jpg", "rotated.jpg"}
    # rejected, with reasons (and the partner of a rejected file too)
    assert rej["input/truncated.png"] == {"truncated"} and rej["target/truncated.png"] == {"partner_rejected"}
    assert rej["input/zero.png"] == {"empty_file"}
    assert rej["input/text.png"] == {"not_an_image"}
    assert rej["input/mismatch.png"] == rej["target/mismatch.png"] == {"size_mismatch"}
    assert rej["input/orphan_lq.png"] == rej["target/orphan_gt.png"] == {"missing_partner"}
    assert rej["target/bomb.png"] == {"too_large"} and rej["input/bomb.png"] == {"partner_rejected"}
    assert rej["input/good_copy.png"] == rej["target/good_copy.png"] == {"duplicate_pair"}
    assert rej["input/locked"] == {"unreadable"}
    assert any(k.startswith("input/bad-") and v == {"unreadable"} for k, v in rej.items())
    assert s["inputs"] == s["shipped"] + s["rejected"]
    assert s["shipped"] == 2 * len(rows) and s["pairs"] == len(rows)
    assert report.duplicates == 1


def test_strict_fails_on_the_first_reject_naming_file_and_reason(tree):
    tmp, recipe, raw = tree
    plan, _ = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw)))
    with pytest.raises(ValueError, match=r"train/Rain13K/input/bad-.*-name\.png: unreadable: the file name is not valid UTF-8"):
        build.run_build(plan, tmp / "out", progress=False, strict=True)  # found while planning
    base = raw / "rain13k/train/Rain13K"
    for folder in ("input", "target"):
        for p in list((base / folder).iterdir()):
            if p.name not in ("good.png", "truncated.png"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    plan, _ = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw)))
    with pytest.raises(ValueError, match=r"train/Rain13K/input/truncated\.png: truncated"):
        build.run_build(plan, tmp / "out2", progress=False, strict=True)  # found while building


def test_a_changed_input_refuses_to_resume(tree):
    tmp, recipe, raw = tree
    plan, _ = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw)))
    build.run_build(plan, tmp / "out", progress=False)
    (raw / "rain13k/train/Rain13K/input/good.png").write_bytes(png(rgb(seed=99)))
    plan2, _ = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw)))
    with pytest.raises(build.ResumeError, match="different plan"):
        build.run_build(plan2, tmp / "out", progress=False)


def test_links_fifos_and_loops_under_the_root_become_reject_rows(tmp_path):
    """Links are followed (datasets are linked in from other disks), but a loop, a dangling link and
    a FIFO (never opened: reading one would hang) are reject rows; a linked folder no part reads
    (here: a system folder) is not entered, so none of its file names reach rejects.parquet."""
    raw = tmp_path / "raw"
    base = build_tree(raw)
    for p in [p for p in (base / "input").iterdir() if p.name not in ("good.png", "name with spaces ü.png")]:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    elsewhere = tmp_path / "other_disk" / "target"
    elsewhere.mkdir(parents=True)
    for p in (base / "target").iterdir():
        shutil.move(str(p), elsewhere / p.name)
    (base / "target").rmdir()
    (base / "target").symlink_to(elsewhere, target_is_directory=True)  # a part's folder on another disk
    (base / "input" / "loop").symlink_to(base / "input", target_is_directory=True)
    (base / "input" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(base / "input" / "fifo.png")
    secret = tmp_path / "system"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0")
    (raw / "rain13k" / "etc").symlink_to(secret, target_is_directory=True)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "links", "sources": [{"source": "rain13k", "parts": ["train"]}]}))
    plan, _ = planner.plan(planner.BuildSettings(recipe=str(recipe), raw=str(raw)))
    s = build.run_build(plan, tmp_path / "out", progress=False)
    assert s["pairs"] == 2 and s["inputs"] == s["shipped"] + s["rejected"]
    rej = {r["path"]: (r["reason"], r["detail"]) for r in pq.read_table(tmp_path / "out" / manifest.REJECTS).to_pylist()}
    assert rej["train/Rain13K/input/fifo.png"][0] == "unreadable" and "FIFO" in rej["train/Rain13K/input/fifo.png"][1]
    assert "dangling" in rej["train/Rain13K/input/dangling.png"][1]
    assert "loop" in rej["train/Rain13K/input/loop"][1]
    assert rej["etc"] == ("excluded_by_recipe", "a linked folder that no part of this source reads (not followed)")
    assert not any("passwd" in p for p in rej)
