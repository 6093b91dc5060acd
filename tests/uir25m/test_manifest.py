import json

import pytest

from uir25m import manifest


def label(**kw):
    base = dict(key="gn_skimage_0123456789abcdef", code="gn", partition="train", source="skimage",
                variant="v0", real=False, level="gaussian_25", params={"sigma": 25.0}, seed=3, width=4,
                height=5, lq_source_format="synthetic", gt_source_format="png", conversions=[], tile="",
                source_lq="", source_gt="a.png")
    base.update(kw)
    return manifest.make_label(**base)


def test_key_rule():
    k = manifest.sample_key("ds_n_b_j", "lsdir", "", "0001/0001000.png", "v3", "0,0,256,256")
    assert k.startswith("ds_n_b_j_lsdir_") and len(k.split("_")[-1]) == 16
    assert k == k.lower() and "." not in k and len(k) <= 64
    assert k == manifest.sample_key("ds_n_b_j", "lsdir", "", "0001/0001000.png", "v3", "0,0,256,256")
    assert k != manifest.sample_key("ds_n_b_j", "lsdir", "", "0001/0001000.png", "v4", "0,0,256,256")
    longest = manifest.sample_key("ll_h_r_s", "a" * 32, "x", "y", "", "")
    assert len(longest) <= 64


@pytest.mark.parametrize("bad", ["Reside", "reside-ots", "a.b", "", "x" * 33, "a__b", "_a"])
def test_source_names_are_checked(bad):
    with pytest.raises(manifest.FormatError, match="source name"):
        manifest.check_source(bad)


def test_shard_layout():
    assert manifest.shard_relpath("train", "b_j", "reds", 12) == "data/train/mixed/b_j/b_j-reds-000012.tar"
    assert manifest.shard_relpath("test", "h", "reside_sots", 0) == "data/test/single/h/h-reside_sots-000000.tar"
    with pytest.raises(manifest.FormatError):
        manifest.shard_relpath("val", "h", "x", 0)


def test_label_is_typed_and_never_null():
    lab = label()
    doc = json.loads(lab.to_json_bytes())
    assert list(doc) == sorted(doc) and set(doc) == set(manifest.LABEL_COLUMNS)
    assert doc["format_version"] == 1 and doc["class_id"] == 0 and doc["family"] == "noise"
    assert json.loads(doc["params"]) == {"sigma": 25.0} and doc["conversions"] == "[]"
    with pytest.raises(manifest.FormatError, match="null"):
        manifest.Label(**{**doc, "level": None})
    with pytest.raises(manifest.FormatError, match="not int"):
        manifest.Label(**{**doc, "seed": "3"})
    with pytest.raises(manifest.FormatError, match="taxonomy"):
        manifest.Label(**{**doc, "class_id": 5})


def test_parquet_is_deterministic_and_atomic(tmp_path):
    rows = [{**json.loads(label(seed=i).to_json_bytes())} for i in range(3)]
    t = manifest.table(rows, manifest.LABEL_SCHEMA)
    manifest.write_parquet(t, tmp_path / "a.parquet", {"x": "1"})
    manifest.write_parquet(t, tmp_path / "b.parquet", {"x": "1"})
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".*tmp*"))
    back = manifest.read_parquet(tmp_path / "a.parquet")
    assert back.schema.metadata[b"x"] == b"1" and back.column("seed").to_pylist() == [0, 1, 2]
    with pytest.raises(manifest.FormatError, match="columns"):
        manifest.table([{"key": "x"}], manifest.LABEL_SCHEMA)


def test_not_a_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a UIR dataset"):
        manifest.read_samples(tmp_path)
