"""`uir-build build` on miniature trees of the real layouts: every valid pair shipped, every other
file rejected with its reason, tiles, dry runs, missing sources."""
from __future__ import annotations


import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from uir25m import build, manifest, planner, sources, subsets
from uir25m.reader import read_member

from trees import TREES, image, make_tree


def recipe_file(tmp_path, entries, synthetic=None, **extra) -> str:
    path = tmp_path / "recipe.yaml"
    data = {"name": "mini", "shard_size": 4, "sources": entries, **extra}
    if synthetic:
        data["synthetic"] = synthetic
    path.write_text(yaml.safe_dump(data))
    return str(path)


def all_parts_recipe(tmp_path, names):
    entries = []
    for name in names:
        spec = sources.load(name)
        entry = {"source": name, "parts": "*"}
        if any(p.type is None for p in spec.parts):
            entry["synthesise"] = ["gn"]
        entries.append(entry)
    return recipe_file(tmp_path, entries, {"gn": {"variants": 1, "levels": ["gaussian_25"]}})


def samples(out):
    return pq.read_table(out / manifest.SAMPLES).to_pylist()


def rejects(out):
    return pq.read_table(out / manifest.REJECTS).to_pylist()


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """Every catalogued layout's miniature tree, built with every part selected."""
    tmp = tmp_path_factory.mktemp("mini")
    raw = tmp / "raw"
    for name in TREES:
        make_tree(raw, name)
    recipe = all_parts_recipe(tmp, sorted(TREES))
    plan, report = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw), seed=3))
    summary = build.run_build(plan, tmp / "out", progress=False, strict=False)
    return tmp, raw, recipe, plan, report, summary


def test_every_valid_pair_of_every_layout_ships(mini):
    tmp, raw, recipe, plan, report, summary = mini
    rows = samples(tmp / "out")
    shipped = {(r["source"], r["source_lq"], r["source_gt"]) for r in rows}
    for name, (files, expected, *_) in TREES.items():
        for part, pairs in expected.items():
            for lq, gt in pairs:
                assert (name, lq, gt) in shipped, f"{name}/{part}: {lq} -> {gt} not shipped"
    assert summary["inputs"] == summary["shipped"] + summary["rejected"]
    assert not report.missing
    # captured pairs keep their labels: type from the part, real flag, partition, variant
    by = {(r["source"], r["source_lq"]): r for r in rows}
    gopro = by[("gopro", "train/GOPR0372_07_00/blur_gamma/000047.png")]
    assert (gopro["type"], gopro["real"], gopro["partition"], gopro["variant"], gopro["seed"]) == ("mb", False, "train", "blur_gamma", -1)
    cdd = by[("cdd11", "test/low_haze_snow/000001.png")]
    assert (cdd["type"], cdd["variant"], cdd["partition"]) == ("ll_h_r_s", "low_haze_snow", "test")
    assert by[("realblur", f"{'RealBlur-J_ECC_IMCORR_centroid_itensity_ref'}/scene001/blur/blur_1.png")]["type"] == "b_j"
    assert by[("sidd", "Data/0001_001_S6_00100_00060_3200_L/0001_NOISY_SRGB_010.PNG")]["real"] is True


def test_files_not_shipped_are_rejected_with_reasons(mini):
    tmp, *_ = mini
    rej = {(r["source"], r["path"]): r for r in rejects(tmp / "out")}
    assert rej[("snow100k", "media/jdway/GameSSD/overlapping/train/mask/beautiful_smile_00001.jpg")]["reason"] == "excluded_by_recipe"
    assert rej[("dpdd", "train_l/source/1P0A1031.png")]["reason"] == "excluded_by_recipe"
    assert rej[("urban100", "image_SRF_2/img_002_SRF_2_LR.png")]["reason"] == "excluded_by_recipe"
    assert rej[("realblur", "RealBlur_J_train_list.txt")]["reason"] == "metadata"


def test_pass_through_pairs_ship_byte_for_byte_and_conversions_are_recorded(mini):
    tmp, raw, *_ = mini
    for r in samples(tmp / "out"):
        if not r["source_lq"]:
            continue
        root = raw / sources.load(r["source"]).dirs[0]
        lq = read_member(tmp / "out" / r["shard"], r["lq_offset"], r["lq_size"])
        if r["source_lq"].lower().endswith(".png") and r["tile"] == "":
            assert lq == (root / r["source_lq"]).read_bytes(), r["key"]
            assert r["conversions"] == "[]" and r["lq_source_format"] == "png"
        else:  # decoded once (JPEG, BMP, TIFF, ...) and stored as PNG
            assert r["lq_source_format"] != "png" and lq.startswith(b"\x89PNG")


def test_bytes_are_reproducible_and_verify_passes(mini, tmp_path, files):
    tmp, raw, recipe, *_ = mini
    plan, _ = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw), seed=3))
    build.run_build(plan, tmp_path / "again", progress=False, workers=2)
    assert files(tmp_path / "again") == files(tmp / "out")
    from uir25m import verify
    assert verify.verify(tmp / "out", decode=True)["ok"]


def test_missing_sources_are_reported_and_the_rest_is_built(tmp_path):
    raw = tmp_path / "raw"
    make_tree(raw, "lol")
    recipe = recipe_file(tmp_path, [{"source": "lol", "parts": ["our485"]}, {"source": "gopro", "parts": ["train"]}])
    plan, report = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw)))
    assert [m["source"] for m in report.missing] == ["gopro"] and str(raw / "GOPRO_Large") in report.missing[0]["looked"][0]
    s = build.run_build(plan, tmp_path / "out", progress=False)
    assert s["pairs"] == 2
    with pytest.raises(FileNotFoundError, match="nothing to build.*gopro"):
        planner.plan(planner.BuildSettings(recipe=recipe_file(tmp_path, [{"source": "gopro", "parts": ["train"]}]), raw=str(raw)))


def test_source_dir_override(tmp_path):
    folder = make_tree(tmp_path / "elsewhere", "lol")
    recipe = recipe_file(tmp_path, [{"source": "lol", "parts": ["our485", "eval15"]}])
    plan, report = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(tmp_path / "nothing"), source_dirs={"lol": str(folder)}))
    assert plan.pairs == 3 and not report.missing


def test_tiles_cut_large_images_and_weights_count_source_pairs(tmp_path):
    raw = tmp_path / "raw"
    root = raw / "LOLdataset"
    for i, name in enumerate(("1.png", "2.png")):
        image(root / "our485/low" / name, size=(40, 30), seed=i)
        image(root / "our485/high" / name, size=(40, 30), seed=10 + i)
    image(root / "our485/low/3.png", size=(10, 10), seed=5)
    image(root / "our485/high/3.png", size=(10, 10), seed=6)
    recipe = recipe_file(tmp_path, [{"source": "lol", "parts": ["our485"]}])
    plan, _ = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw), tile=16))
    s = build.run_build(plan, tmp_path / "out", progress=False)
    rows = samples(tmp_path / "out")
    # 40 x 30 in 16 px tiles: x 0, 16, 24 (edge-aligned) by y 0, 14 -> 6 tiles; the 10 x 10 image is whole
    assert s["pairs"] == 2 * 6 + 1
    tiles = sorted(r["tile"] for r in rows if r["source_gt"] == "our485/high/1.png")
    assert tiles == sorted(f"{x},{y},16,16" for x in (0, 16, 24) for y in (0, 14))
    big = next(r for r in rows if r["tile"] == "24,14,16,16")
    lq = np.asarray(Image.open(root / big["source_lq"]))[14:30, 24:40]
    got = np.asarray(Image.open(__import__("io").BytesIO(read_member(tmp_path / "out" / big["shard"], big["lq_offset"], big["lq_size"]))))
    assert np.array_equal(got, lq)
    assert subsets.source_pair_counts(tmp_path / "out") == {("ll", "lol"): 3}


def test_dry_run_estimates_without_writing(tmp_path):
    raw = tmp_path / "raw"
    make_tree(raw, "bsd400")
    make_tree(raw, "lol")
    recipe = recipe_file(tmp_path, [{"source": "bsd400", "parts": ["all"], "synthesise": ["gn"]}, {"source": "lol", "parts": "*"}],
                         {"gn": {"variants": 2, "levels": ["gaussian_15", "gaussian_50"]}})
    plan, _ = planner.plan(planner.BuildSettings(recipe=recipe, raw=str(raw)))
    from uir25m import estimate
    e = estimate.estimate(plan)
    assert e["items"] == 4 + 3 and e["tasks"] == len(plan.tasks)
    assert e["est_samples"] == 7 and e["est_bytes"] > 0 and e["est_cpu_seconds"] > 0
    assert {(r["type"], r["source"]) for r in e["streams"]} == {("gn", "bsd400"), ("ll", "lol")}


@pytest.mark.parametrize("name", ["uir-2.5m", "5d", "12d", "mixed", "test-5d", "test-dn", "test-12d", "test-realworld"])
def test_packaged_recipes_plan_on_the_miniature_trees(mini, name):
    from uir25m import taxonomy
    tmp, raw, *_ = mini
    plan, report = planner.plan(planner.BuildSettings(recipe=name, raw=str(raw)))
    assert {m["source"] for m in report.missing} <= set(sources.names()) - set(TREES)  # only sources with no tree
    assert plan.pairs > 0
    expected_types = {"5d": {"h", "rs", "gn", "mb", "ll"}, "test-5d": {"h", "rs", "gn", "mb", "ll"},
                      "mixed": set(taxonomy.in_group("mixed")), "test-dn": {"gn"},
                      "uir-2.5m": set(taxonomy.CODES), "12d": set(subsets.load("12d").codes)}
    if name in expected_types:
        assert {t.code for t in plan.tasks} == expected_types[name]
    if name == "test-dn":  # 5 sigmas per clean image
        assert {it.level for t in plan.tasks for it in t.items} == {f"gaussian_{s}" for s in (15, 25, 50, 60, 75)}
    assert all(t.partition == ("test" if name.startswith("test") else "train") for t in plan.tasks)
    if name == "test-realworld":
        assert any(it.variant == "no_reference" and it.lq == it.gt for t in plan.tasks for it in t.items)


def test_a_packaged_test_recipe_builds(mini, tmp_path):
    tmp, raw, *_ = mini
    plan, _ = planner.plan(planner.BuildSettings(recipe="test-5d", raw=str(raw)))
    s = build.run_build(plan, tmp_path / "t5", progress=False, strict=False)
    assert s["types"] == 5 and s["pairs_by_partition"] == {"test": s["pairs"]}
    assert s["inputs"] == s["shipped"] + s["rejected"]
