"""Online synthesis (format 1.2): an `--online` build stores each clean image once and the loader
makes the pairs, pixel for pixel the offline build's in `fixed` mode, fresh every epoch in `fresh`."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from training.data import make_loader
from training.data import online as tonline
from uir25m import build, card, demo, manifest, planner, reader, stats, subsetting, subsets, verify


def _build(out, online, **kw):
    plan = demo.plan(demo.DemoSettings(per_type=2, test_per_type=1, seed=5, online=online, **kw))
    return build.run_build(plan, out, progress=False)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("online")
    off, on = tmp / "off", tmp / "on"
    return off, on, _build(off, False), _build(on, True)


def _du(root):
    return sum(p.stat().st_size for p in root.rglob("*.tar"))


def test_online_demo_stores_clean_images_once_and_verifies(pair):
    off, on, s_off, s_on = pair
    assert s_on["pairs"] == s_off["pairs"] and s_on["types"] == s_off["types"] == 19
    assert _du(on) <= 0.5 * _du(off)
    rows = pq.read_table(on / manifest.SAMPLES).to_pylist()
    assert all(r["online"] and r["lq_size"] == r["gt_size"] == 0 and r["clean_key"] for r in rows)
    clean = manifest.read_clean(on)
    assert set(r["clean_key"] for r in rows) <= set(clean.column("key").to_pylist())
    assert len(set(zip(clean.column("partition").to_pylist(), clean.column("path").to_pylist()))) == clean.num_rows
    assert verify.verify(on, decode=True)["ok"]
    st = stats.stats(on)
    assert st["online"] == st["pairs"] and st["clean_shards"] >= 1
    off_keys = pq.read_table(off / manifest.SAMPLES).column("key").to_pylist()
    assert [r["key"] for r in rows] == off_keys  # the same sample rows


def test_verify_catches_a_damaged_clean_shard(pair, tmp_path):
    import shutil
    _, on, _, _ = pair
    bad = tmp_path / "bad"
    shutil.copytree(on, bad)
    row = manifest.read_clean(bad).to_pylist()[0]
    with open(bad / row["shard"], "r+b") as f:
        f.seek(row["png_offset"] + 40)
        f.write(b"\xff\x00\xff")
    problems = verify.verify(bad)["problems"]
    assert any(p["key"] == row["key"] and "png bytes differ" in p["problem"] for p in problems)


def test_card_subset_and_datasets_handle_an_online_dataset(pair, tmp_path):
    datasets = pytest.importorskip("datasets")
    _, on, _, _ = pair
    text = card.dataset_card(on).read_text()
    assert "## Online samples" in text and "`all`" in text.split("## Online samples")[1]
    sub = subsetting.make_subset(on, subsets.from_codes(["gn", "j"]), tmp_path / "sub")
    assert sub["pairs"] > 0 and verify.verify(tmp_path / "sub", decode=True)["ok"]
    assert (tmp_path / "sub" / manifest.CLEAN).is_file()
    files = sorted(str(p) for p in (on / "data" / "train").rglob("*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": files}, split="train", streaming=True)
    ex = next(iter(ds))
    assert ex["cls"] == ex["json"]["class_id"] and "lq.png" not in ex


def _batches(root, n, **kw):
    loader = make_loader(str(root), batch_size=6, crop=48, seed=7, **kw)
    out = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        for b in loader:
            out.append(b)
            if len(out) == n:
                return out, loader
    return out, loader


def _same(a, b):
    for x, y in zip(a, b, strict=True):
        assert x["key"] == y["key"] and torch.equal(x["class_id"], y["class_id"])
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"])
        assert x["label"] == y["label"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_fixed_mode_gives_the_offline_batches_for_every_type_and_resumes(pair, workers):
    off, on, _, _ = pair
    a, _ = _batches(off, 8, num_workers=workers)
    b, loader = _batches(on, 8, num_workers=workers)
    _same(a, b)
    assert {t for x in b for t in x["type"]} == set(codec_types := [t for x in a for t in x["type"]]) and len(set(codec_types)) == 19
    # resume mid-way from a state: the rest is the same batches
    loader = make_loader(str(on), batch_size=6, crop=48, seed=7, num_workers=workers)
    it = iter(loader)
    first = [next(it) for _ in range(3)]
    state = loader.state_dict()
    again = make_loader(str(on), batch_size=6, crop=48, seed=7, num_workers=workers)
    again.load_state_dict(state)
    rest = [b for _, b in zip(range(3), again)]
    _same(first + rest, b[:6])


def test_fresh_mode_changes_per_epoch_and_regenerates_from_labels(pair):
    _, on, _, _ = pair
    fixed, _ = _batches(on, 4, num_workers=0)
    fresh, loader = _batches(on, 4, num_workers=0, online="fresh")
    assert [x["key"] for x in fixed] == [x["key"] for x in fresh]
    assert any(not torch.equal(x["lq"], y["lq"]) for x, y in zip(fixed, fresh))
    assert all(torch.equal(x["gt"], y["gt"]) for x, y in zip(fixed, fresh))
    by_key = {r["key"]: r for r in manifest.read_clean(on).to_pylist()}
    rows = {r["key"]: r for r in pq.read_table(on / manifest.SAMPLES).to_pylist()}
    plain, _ = _batches(on, 1, num_workers=0, online="fresh", flips=False)
    b = plain[0]
    for i, label in enumerate(b["label"][:4]):
        assert label["seed"] != rows[label["key"]]["seed"]
        c = by_key[rows[label["key"]]["clean_key"]]
        with open(on / c["shard"], "rb") as f:
            f.seek(c["png_offset"])
            rgb = np.ascontiguousarray(reader.decode_bgr(f.read(c["png_size"]), "clean")[..., ::-1])
        lq = tonline.regenerate(label, rgb)  # from the label alone (and its clean image)
        gt = rgb if not label["tile"] else rgb[[int(v) for v in label["tile"].split(",")][1]:][:label["height"]]
        gt = gt[:, [int(v) for v in label["tile"].split(",")][0]:][:, :label["width"]] if label["tile"] else gt
        want_gt = (b["gt"][i].permute(1, 2, 0) * 255).round().byte().numpy()
        want_lq = (b["lq"][i].permute(1, 2, 0) * 255).round().byte().numpy()
        h, w = want_gt.shape[:2]
        found = [(y, x) for y in range(gt.shape[0] - h + 1) for x in range(gt.shape[1] - w + 1)
                 if np.array_equal(gt[y:y + h, x:x + w], want_gt) and np.array_equal(lq[y:y + h, x:x + w], want_lq)]
        assert found, f"{label['key']}: the batch's LQ is not a crop of the LQ its label regenerates"
    # epoch 1 differs from epoch 0 for the same key
    loader.set_epoch(1)
    seeds1 = {k: l["seed"] for x in loader for k, l in zip(x["key"], x["label"])}
    seeds0 = {k: l["seed"] for x in fresh for k, l in zip(x["key"], x["label"])}
    common = set(seeds0) & set(seeds1)
    assert common and all(seeds0[k] != seeds1[k] for k in common)


def test_fresh_on_an_offline_dataset_is_an_error_naming_it(pair):
    off, _, _, _ = pair
    with pytest.raises(ValueError, match=str(off)):
        make_loader(str(off), batch_size=6, crop=48, num_workers=0, online="fresh")
    with pytest.raises(ValueError, match="online must be"):
        make_loader(str(off), batch_size=6, crop=48, num_workers=0, online="sometimes")


def test_the_loader_warns_when_the_engine_versions_differ(pair, tmp_path):
    import shutil
    _, on, _, _ = pair
    other = tmp_path / "other"
    shutil.copytree(on, other)
    info = json.loads((other / manifest.BUILD_JSON).read_text())
    info["online"]["engine"]["opencv"] = "0.0.1"
    (other / manifest.BUILD_JSON).write_text(json.dumps(info))
    with pytest.warns(tonline.OnlineVersionWarning, match="opencv 0.0.1"):
        make_loader(str(other), batch_size=6, crop=48, num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", tonline.OnlineVersionWarning)
        make_loader(str(on), batch_size=6, crop=48, num_workers=0)


def test_a_5d_build_over_miniature_trees_keeps_captured_pairs_stored(tmp_path):
    from tests.uir25m.trees import TREES, make_tree

    raw = tmp_path / "raw"
    for name in TREES:
        make_tree(raw, name)
    sizes, images = {}, {}
    for online in (False, True):
        plan, _ = planner.plan(planner.BuildSettings(recipe="test-5d", raw=str(raw), online=online))
        out = tmp_path / f"o{int(online)}"
        build.run_build(plan, out, progress=False)
        assert verify.verify(out, decode=True)["ok"]
        sizes[online] = _du(out)
        rows = pq.read_table(out / manifest.SAMPLES).to_pylist()
        assert all(r["online"] == (online and not r["real"] and not r["source_lq"]) for r in rows)
        assert any(r["real"] for r in rows) and any(not r["real"] for r in rows)  # captured and synthetic parts
        images[online] = sum(r["lq_size"] + r["gt_size"] for r in rows) + int(pc.sum(manifest.read_clean(out)
                                                                                      .column("png_size")).as_py() or 0)
    # image bytes shrink; on 12 x 10-pixel miniatures the tar headers of the extra clean members
    # outweigh that (the README states the ratio: about 1.2x the offline bytes here)
    assert images[True] < images[False]
    print(f"5d miniature: online/offline tar bytes {sizes[True] / sizes[False]:.3f}, "
          f"image bytes {images[True] / images[False]:.3f}")
