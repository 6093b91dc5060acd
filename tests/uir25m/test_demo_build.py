"""The demo build end to end on real tars and parquet: format rules, determinism, accounting."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from uir25m import build, codec, degrade, demo, manifest, taxonomy
from uir25m.reader import read_member, read_shard
from uir25m.sources.embedded import DEMO_IMAGES, data_root



def samples(root):
    return pq.read_table(root / manifest.SAMPLES).to_pylist()


def test_same_seed_gives_byte_identical_tars_and_manifests(demo_dir, tmp_path, files, make_demo):
    make_demo(tmp_path / "again")
    a, b = files(demo_dir), files(tmp_path / "again")
    assert a.keys() == b.keys() and any(k.endswith(".tar") for k in a)
    assert [k for k in a if a[k] != b[k]] == []


def test_another_seed_changes_lq_but_not_gt(demo_dir, tmp_path, make_demo):
    make_demo(tmp_path / "s8", demo.DemoSettings(per_type=2, test_per_type=1, size=64, seed=8))
    a = {r["key"]: r for r in samples(demo_dir)}
    b = {r["key"]: r for r in samples(tmp_path / "s8")}
    assert a.keys() == b.keys()  # keys do not depend on the seed
    assert all(a[k]["gt_sha256"] == b[k]["gt_sha256"] for k in a)
    # the LQ changes exactly where the drawn params change (fixed levels such as ms/vng draw nothing)
    assert all((a[k]["lq_sha256"] != b[k]["lq_sha256"]) == (a[k]["params"] != b[k]["params"]) for k in a)
    assert sum(a[k]["params"] != b[k]["params"] for k in a) >= len(a) - 5


@pytest.mark.slow
def test_two_workers_write_the_same_bytes(demo_dir, tmp_path, files, make_demo):
    make_demo(tmp_path / "w2", workers=2)
    assert files(tmp_path / "w2") == files(demo_dir)


def test_all_19_types_in_both_partitions_and_groups(demo_dir, small):
    rows = samples(demo_dir)
    for part in ("train", "test"):
        got = {(r["type"], r["class_id"], r["group"]) for r in rows if r["partition"] == part}
        assert got == {(t.code, t.class_id, t.group) for t in taxonomy.TYPES}
    assert sum(r["partition"] == "train" for r in rows) == 19 * small.per_type
    shards = pq.read_table(demo_dir / manifest.SHARDS).to_pylist()
    for s in shards:
        t = taxonomy.get(s["type"])
        assert s["shard"] == f"data/{s['partition']}/{t.group}/{t.code}/{t.code}-skimage-000000.tar"


def test_every_sample_has_the_four_fields_and_a_consistent_label(demo_dir):
    rows = {r["key"]: r for r in samples(demo_dir)}
    label_keys = None
    seen = 0
    for shard in sorted((demo_dir / "data").rglob("*.tar")):
        for s in read_shard(shard):
            seen += 1
            assert sorted(k for k in s if not k.startswith("__")) == ["cls", "gt.png", "json", "lq.png"]
            lab = json.loads(s["json"])
            label_keys = label_keys or set(lab)
            assert set(lab) == label_keys == set(manifest.LABEL_COLUMNS)
            assert all(v is not None for v in lab.values())
            assert lab["key"] == s["__key__"] and int(s["cls"]) == lab["class_id"]
            assert lab["format_version"] == 1 and lab["real"] is False and lab["seed"] >= 0
            row = rows[s["__key__"]]
            assert {k: row[k] for k in manifest.LABEL_COLUMNS} == lab
            lq, gt = codec.decode(s["lq.png"]), codec.decode(s["gt.png"])
            assert lq.pixels.shape == gt.pixels.shape == (lab["height"], lab["width"], 3)
            assert lq.passthrough and gt.passthrough  # shipped as 8-bit RGB PNG
            path = demo_dir / row["shard"]
            for field in ("lq", "gt", "json", "cls"):
                member = {"lq": "lq.png", "gt": "gt.png", "json": "json", "cls": "cls"}[field]
                assert read_member(path, row[f"{field}_offset"], row[f"{field}_size"]) == s[member]
            assert row["lq_sha256"] == hashlib.sha256(s["lq.png"]).hexdigest()
            assert row["gt_sha256"] == hashlib.sha256(s["gt.png"]).hexdigest()
    assert seen == len(rows)


def test_shards_manifest_matches_the_files(demo_dir):
    for s in pq.read_table(demo_dir / manifest.SHARDS).to_pylist():
        data = (demo_dir / s["shard"]).read_bytes()
        assert s["bytes"] == len(data) and s["sha256"] == hashlib.sha256(data).hexdigest()
        assert s["count"] == sum(1 for _ in read_shard(demo_dir / s["shard"]))


def test_lq_is_reproduced_from_the_label(demo_dir):
    """Every drawn parameter is in the label: the GT plus the params give the LQ again."""
    for r in samples(demo_dir):
        gt = codec.decode_png(read_member(demo_dir / r["shard"], r["gt_offset"], r["gt_size"]))
        lq = codec.decode_png(read_member(demo_dir / r["shard"], r["lq_offset"], r["lq_size"]))
        again = degrade.apply(r["type"], gt, json.loads(r["params"]))
        assert np.array_equal(again, lq), r["key"]
        # and the params are what the per-sample seed draws
        drawn = degrade.sample(r["type"], np.random.default_rng(r["seed"]), r["level"])
        assert drawn == json.loads(r["params"])


def test_gt_is_the_tile_of_the_source_image(demo_dir):
    for r in samples(demo_dir)[:40]:
        x, y, w, h = map(int, r["tile"].split(","))
        src = np.asarray(Image.open(data_root() / r["source_gt"]).convert("RGB"))
        gt = codec.decode_png(read_member(demo_dir / r["shard"], r["gt_offset"], r["gt_size"]))
        assert np.array_equal(gt, src[y:y + h, x:x + w])


def test_test_images_are_held_out_whole(demo_dir):
    rows = samples(demo_dir)
    train = {r["source_gt"] for r in rows if r["partition"] == "train"}
    test = {r["source_gt"] for r in rows if r["partition"] == "test"}
    assert test and train and not (train & test)
    assert test <= {k for k, v in DEMO_IMAGES.items() if v == "test"}


@pytest.mark.slow
def test_whole_images_ship_byte_for_byte(tmp_path, make_demo):
    s = make_demo(tmp_path / "full", demo.DemoSettings(per_type=1, test_per_type=0, size=0, seed=1))
    rows = samples(tmp_path / "full")
    assert len(rows) == 19 and s["pairs"] == 19
    for r in rows:
        assert r["tile"] == "" and r["conversions"] == "[]"
        gt = read_member(tmp_path / "full" / r["shard"], r["gt_offset"], r["gt_size"])
        assert gt == (data_root() / r["source_gt"]).read_bytes()


def test_inputs_equal_shipped_plus_rejected(tmp_path, demo_dir, make_demo):
    s = make_demo(tmp_path / "one", demo.DemoSettings(per_type=1, test_per_type=1, size=64))
    assert s["inputs"] == s["shipped"] + s["rejected"] == len(DEMO_IMAGES)
    rej = pq.read_table(tmp_path / "one" / manifest.REJECTS).to_pylist()
    shipped = {r["source_gt"] for r in samples(tmp_path / "one")}
    assert {r["path"] for r in rej} == set(DEMO_IMAGES) - shipped
    assert {r["reason"] for r in rej} == {"excluded_by_recipe"} and s["rejects_by_reason"] == {"excluded_by_recipe": len(rej)}
    info = manifest.read_build_json(demo_dir)
    assert info["status"] == "complete" and info["summary"]["inputs"] == info["summary"]["shipped"] + info["summary"]["rejected"]


def test_hf_datasets_streams_every_sample_and_label(demo_dir):
    datasets = pytest.importorskip("datasets")
    rows = {r["key"]: r for r in samples(demo_dir)}
    files = sorted(str(p) for p in (demo_dir / "data" / "train").rglob("*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": files}, split="train", streaming=True)
    n = 0
    for ex in ds:
        n += 1
        row = rows[ex["__key__"]]
        assert isinstance(ex["lq.png"], Image.Image) and isinstance(ex["gt.png"], Image.Image)
        assert ex["lq.png"].size == ex["gt.png"].size == (row["width"], row["height"])
        assert ex["cls"] == row["class_id"]
        assert ex["json"] == {k: row[k] for k in manifest.LABEL_COLUMNS}
        lq = np.asarray(ex["lq.png"].convert("RGB"))
        assert np.array_equal(lq, codec.decode_png(read_member(demo_dir / row["shard"], row["lq_offset"], row["lq_size"])))
    assert n == sum(r["partition"] == "train" for r in rows.values())


def test_webdataset_reads_the_shards(demo_dir):
    wds = pytest.importorskip("webdataset")
    urls = sorted(str(p) for p in (demo_dir / "data").rglob("*.tar"))
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb8").to_tuple("__key__", "lq.png", "gt.png", "json", "cls")
    got = list(ds)
    assert len(got) == len(samples(demo_dir))
    for key, lq, gt, lab, cls in got:
        assert lq.shape == gt.shape and lab["key"] == key and cls == lab["class_id"]


def test_plan_is_deterministic_and_keys_unique(small):
    a, b = demo.plan(small), demo.plan(small)
    assert a.fingerprint() == b.fingerprint()
    keys = [it.key(manifest.format_tile(it.tile)) for t in a.tasks for it in t.items]
    assert len(keys) == len(set(keys)) == a.pairs
    assert a.fingerprint() != demo.plan(demo.DemoSettings(per_type=2, test_per_type=1, size=64, seed=8)).fingerprint()


def test_resume_keeps_done_shards_and_redoes_missing_ones(tmp_path, demo_dir, files, make_demo, small):
    out = tmp_path / "r"
    make_demo(out)
    victim = sorted((out / "data").rglob("*.tar"))[3]
    stem = str(victim.relative_to(out))[:-4].replace("/", "__")
    (out / manifest.PARTS / f"{stem}.parquet").unlink()
    victim.write_bytes(b"half a tar")  # as if the rename happened but not the part file
    s = build.run_build(demo.plan(small), out, mode="resume", progress=False)
    assert s["shards_built"] == 1 and s["shards_resumed"] == s["shards"] - 1
    assert files(out) == files(demo_dir)


def test_resume_refuses_a_different_plan(tmp_path, make_demo):
    out = tmp_path / "x"
    make_demo(out)
    other = demo.plan(demo.DemoSettings(per_type=2, test_per_type=1, size=64, seed=99))
    with pytest.raises(build.ResumeError, match="different plan"):
        build.run_build(other, out, mode="resume", progress=False)
    s = build.run_build(other, out, mode="overwrite", progress=False)
    assert s["shards_built"] == s["shards"]


def test_resume_refuses_a_folder_that_is_not_a_build(tmp_path, small):
    (tmp_path / "data").mkdir()
    with pytest.raises(build.ResumeError, match="not a resumable build"):
        build.run_build(demo.plan(small), tmp_path, mode="resume", progress=False)


def test_one_build_per_folder_at_a_time(tmp_path, small):
    import fcntl
    import os
    tmp_path.mkdir(exist_ok=True)
    fd = os.open(tmp_path / ".uir-build.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(build.ResumeError, match="another build is running"):
            build.run_build(demo.plan(small), tmp_path, progress=False)
    finally:
        os.close(fd)
    assert build.run_build(demo.plan(small), tmp_path, progress=False)["pairs"] == 57


def test_an_unfinished_build_says_so(tmp_path, small):
    from uir25m import stats
    (tmp_path / "build.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="not finished"):
        stats.stats(tmp_path)
