"""Finding each dataset wherever its archive unpacked under --root: nested folders, Restormer's
layout, a misleading folder name, two copies (refused), one folder claimed by two layouts, and
the reports that say where each was found and what was passed over."""
from __future__ import annotations

import json

import pytest
from clirun import cli
from trees import TREES, make_tree

from uir25m import planner, sources
from uir25m.sources import discover


def where(raw, name, overrides=None):
    spec = sources.load(name)
    return discover.locate(spec, discover.Downloads.list(raw), overrides)


def test_a_dataset_one_level_down_is_found(tmp_path):
    folder = make_tree(tmp_path, "reside_ots", at="RESIDE/OTS_BETA")
    loc = where(tmp_path, "reside_ots")
    assert loc.root == folder and loc.chosen.how == "named OTS_BETA"


def test_restormers_layout_finds_rain13k_at_the_folder_holding_train_and_test(tmp_path):
    make_tree(tmp_path, "rain13k", at="Datasets")  # Datasets/train/Rain13K/{input,target}, Datasets/test/...
    loc = where(tmp_path, "rain13k")
    assert loc.root == tmp_path / "Datasets"
    assert loc.chosen.how == "above Datasets/train/Rain13K"
    assert [c.path for c in loc.passed_over()] == [tmp_path / "Datasets/train/Rain13K"]
    assert "none of its parts' folders are there" in loc.passed_over()[0].verdict


def test_a_folder_named_like_the_dataset_but_holding_it_one_level_down(tmp_path):
    folder = make_tree(tmp_path, "dpdd", at="DPDD/dd_dp_dataset_canon")
    loc = where(tmp_path, "dpdd")
    assert loc.root == folder
    passed = {c.path: c.verdict for c in loc.passed_over()}
    assert "train_c/source" in passed[tmp_path / "DPDD"]


def test_the_downloads_folder_itself_can_be_the_dataset(tmp_path):
    make_tree(tmp_path, "rain13k", at="")
    assert where(tmp_path, "rain13k").root == tmp_path


@pytest.mark.parametrize("second", ["backup/GoPro", "old/stuff/GOPRO_Large"])
def test_two_copies_of_one_dataset_are_refused_naming_both(tmp_path, second):
    make_tree(tmp_path, "gopro")
    make_tree(tmp_path, "gopro", at=second)
    loc = where(tmp_path, "gopro")
    assert loc.root is None and "2 copies of gopro" in loc.ambiguous and "--source gopro=PATH" in loc.ambiguous
    assert str(tmp_path / second) in loc.ambiguous
    # --source keeps priority and settles it
    assert where(tmp_path, "gopro", {"gopro": str(tmp_path / second)}).root == tmp_path / second
    # the build refuses with the same words, before anything is written
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: g\nsources:\n  - {source: gopro, parts: [train]}\n")
    r = cli("uir-build", "build", "--recipe", str(recipe), "--root", str(tmp_path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "2 copies of gopro" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    r = cli("uir-build", "build", "--recipe", str(recipe), "--root", str(tmp_path), "--out", str(tmp_path / "out"),
            "--source", f"gopro={tmp_path / 'GOPRO_Large'}", "--quiet", "--workers", "1")
    assert r.returncode == 0, r.stderr


def test_a_link_to_the_same_copy_is_not_a_second_copy(tmp_path):
    folder = make_tree(tmp_path, "gopro")
    (tmp_path / "links").mkdir()
    (tmp_path / "links/GoPro").symlink_to(folder, target_is_directory=True)
    loc = where(tmp_path, "gopro")
    assert loc.root is not None and not loc.ambiguous


def test_sources_check_says_where_each_was_found_and_what_was_passed_over(tmp_path):
    make_tree(tmp_path, "rain13k", at="Datasets")
    make_tree(tmp_path, "dpdd", at="DPDD/dd_dp_dataset_canon")
    make_tree(tmp_path, "gopro", at="a/GOPRO_Large")
    make_tree(tmp_path, "gopro", at="b/GOPRO_Large")
    r = cli("uir-build", "sources", "check", "--root", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    present = {s["source"]: s for s in c["present"]}
    assert set(present) == {"rain13k", "dpdd"}
    assert present["rain13k"]["root"] == str(tmp_path / "Datasets")
    assert present["rain13k"]["passed_over"][0]["path"] == str(tmp_path / "Datasets/train/Rain13K")
    assert [a["source"] for a in c["ambiguous"]] == ["gopro"]
    text = cli("uir-build", "sources", "check", "--root", str(tmp_path)).stdout
    assert "AMBIGUOUS gopro" in text and "passed over" in text and "ambiguous: gopro" in text


def test_a_source_inside_another_sources_folder_is_accounted_once(tmp_path):
    outer = make_tree(tmp_path, "rain13k", at="")  # the downloads folder is Restormer's Datasets/
    make_tree(tmp_path, "gopro")  # ... and also holds GOPRO_Large/
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: g\nsources:\n  - {source: rain13k, parts: [train]}\n  - {source: gopro, parts: [train]}\n")
    plan, report = planner.plan(planner.BuildSettings(recipe=str(recipe), raw=str(outer)))
    by_source = {}
    for source, rel, *_ in plan.inputs:
        by_source.setdefault(source, set()).add(rel)
    assert not any(rel.startswith("GOPRO_Large/") for rel in by_source["rain13k"])
    assert by_source["gopro"] == set(TREES["gopro"][0])


def test_a_missing_source_says_what_was_looked_for(tmp_path):
    (tmp_path / "GoPro").mkdir()  # named like it, but empty
    loc = where(tmp_path, "gopro")
    assert loc.root is None and str(tmp_path / "GOPRO_Large") in loc.looked
    assert "none of its parts' folders" in loc.passed_over()[0].verdict


def test_listing_is_bounded(tmp_path):
    for i in range(30):
        (tmp_path / f"d{i:02d}" / "x").mkdir(parents=True)
    d = discover.Downloads.list(tmp_path, max_folders=10)
    assert len(d.folders) == 10 and "stopped after 10 folders" in d.truncated
