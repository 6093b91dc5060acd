"""The columnar manifest commands give what the row-by-row code gave: each is compared, on a real
build (untiled demo and a tiled build), with a straightforward per-row computation written here
as the old code did it."""
from __future__ import annotations

import shutil
from collections import Counter, defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest

from uir25m import card, demo, manifest, stats, subsets, subsetting, taxonomy


@pytest.fixture(scope="module", params=["demo", "demo-tiles", "tiled-build"])
def built(request, tmp_path_factory, make_demo):
    tmp = tmp_path_factory.mktemp(request.param)
    out = tmp / "ds"
    if request.param != "tiled-build":
        make_demo(out, demo.DemoSettings(per_type=3, test_per_type=1, size=64 if request.param == "demo-tiles" else 0, seed=3))
        return out
    import yaml
    from trees import image

    from uir25m import build, planner

    for i in range(5):  # captured pairs cut into tiles at build time: several samples per source pair
        for side in ("input", "target"):
            image(tmp / "raw/rain13k/train/Rain13K" / side / f"{i}.png", size=(40, 36), seed=10 * i + (side == "target"))
    recipe = tmp / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "tiles", "shard_size": 2, "tile": 16,
                                      "sources": [{"source": "rain13k", "parts": ["train"]}]}))
    plan, _ = planner.plan(planner.BuildSettings(recipe=str(recipe), raw=str(tmp / "raw")))
    build.run_build(plan, out, progress=False)
    assert sum(subsets.source_pair_counts(out).values()) == 5 < pq.read_table(out / manifest.SAMPLES).num_rows
    return out


def rows(root):
    return pq.read_table(root / manifest.SAMPLES).to_pylist()


def old_source_pairs(root, partition="train"):
    pairs = defaultdict(set)
    for r in rows(root):
        if r["partition"] == partition:
            pairs[(r["type"], r["source"])].add((r["source_lq"], r["source_gt"], r["variant"]))
    return {k: len(v) for k, v in pairs.items()}


def test_source_pairs_equal_the_row_by_row_count_in_both_format_revisions(built, tmp_path):
    assert subsets.source_pair_counts(built) == old_source_pairs(built)
    assert subsets.source_pair_counts(built, "test") == old_source_pairs(built, "test")
    v10 = tmp_path / "v10"  # a format 1.0 dataset: shards.parquet without source_pairs
    shutil.copytree(built, v10)
    table = pq.read_table(v10 / manifest.SHARDS)
    manifest.write_parquet(table.drop_columns(["source_pairs"]), v10 / manifest.SHARDS)
    assert subsets.source_pair_counts(v10) == old_source_pairs(built)


def test_stats_and_card_streams_equal_the_row_by_row_counts(built):
    samples, shards = rows(built), pq.read_table(built / manifest.SHARDS).to_pylist()
    want = defaultdict(lambda: {"pairs": 0, "real": 0, "bytes": 0, "shards": 0})
    for r in samples:
        want[(r["type"], r["partition"], r["source"])]["pairs"] += 1
        want[(r["type"], r["partition"], r["source"])]["real"] += int(r["real"])
    for s in shards:
        want[(s["type"], s["partition"], s["source"])]["bytes"] += s["bytes"]
        want[(s["type"], s["partition"], s["source"])]["shards"] += 1
    got = stats.stats(built)
    assert {(r["type"], r["partition"], r["source"]): {k: r[k] for k in ("pairs", "real", "bytes", "shards")}
            for r in got["rows"]} == dict(want)
    assert [(r["type"], r["partition"], r["source"]) for r in got["rows"]] == sorted(
        want, key=lambda k: (taxonomy.get(k[0]).class_id, k[1], k[2]))
    assert got["pairs"] == len(samples) and got["by_type"] == dict(Counter(r["type"] for r in samples))
    assert got["rejects"] == pq.read_table(built / manifest.REJECTS).num_rows
    streams = {(s.partition, s.code, s.source): (s.pairs, s.real, s.bytes) for s in card.dataset_streams(built)}
    assert streams == {(p, t, s): (v["pairs"], v["real"], v["bytes"]) for (t, p, s), v in want.items()}


def test_the_loader_catalogue_equals_the_manifest_rows(built):
    pytest.importorskip("torch")
    from training.data import catalog_from_dataset, preset_for

    catalog = catalog_from_dataset(str(built), preset_for("all"), "train")
    by_stream = defaultdict(list)
    for r in rows(built):
        if r["partition"] == "train":
            by_stream[(r["type"], r["source"])].append(r)
    assert [(s.code, s.source) for s in catalog.streams] == sorted(
        by_stream, key=lambda k: (taxonomy.get(k[0]).class_id, k[1]))
    pairs = old_source_pairs(built)
    for s in catalog.streams:
        mine = by_stream[(s.code, s.source)]
        assert s.shards == sorted({r["shard"] for r in mine})
        assert [s.shards[i] for i in s.shard_id] == [r["shard"] for r in mine]
        assert [s.key(i) for i in range(len(mine))] == [r["key"] for r in mine]
        spans = np.array([[r[c] for c in ("gt_offset", "gt_size", "json_offset", "json_size", "lq_offset", "lq_size")]
                          for r in mine])
        assert np.array_equal(s.spans, spans) and s.src_pairs == pairs[(s.code, s.source)]
        assert s.shard_id.dtype == np.int32 and s.spans.dtype == np.int64


def test_subset_manifests_equal_the_row_by_row_filter(built, tmp_path):
    preset = subsets.from_codes("gn,h,b_j,rs")
    subsetting.make_subset(built, preset, tmp_path / "sub", link=True)
    keep = {(t, s) for t, s in zip(*(pq.read_table(built / manifest.SHARDS).column(c).to_pylist() for c in ("type", "source")))
            if preset.selection(t, s)}
    want = [r for r in rows(built) if (r["type"], r["source"]) in keep]
    assert rows(tmp_path / "sub") == want
    sources = {s for _, s in keep}
    types = {t for t, _ in keep} | {""}
    want_rej = [r for r in pq.read_table(built / manifest.REJECTS).to_pylist() if r["source"] in sources and r["type"] in types]
    assert pq.read_table(tmp_path / "sub" / manifest.REJECTS).to_pylist() == want_rej


def test_the_build_accounting_equals_the_set_arithmetic(built):
    import json

    info = json.loads((built / manifest.BUILD_JSON).read_text())
    shipped = {(r["source"], p) for r in rows(built) for p in (r["source_gt"], r["source_lq"]) if p}
    rejected = {(r["source"], r["path"]) for r in pq.read_table(built / manifest.REJECTS).to_pylist()} - shipped
    summary = info["summary"]
    assert summary["shipped"] == len(shipped) and summary["rejected"] == len(rejected)
    assert summary["inputs"] == len(shipped | rejected)
    assert info["format_revision"] == manifest.FORMAT_REVISION == 2
