"""Subsets, the dataset card, and pushes read back by real clients: HF `datasets`, webdataset,
boto3 against a real S3 server, and the huggingface_hub client against a fake Hub (contract test
of the legacy LFS protocol; production uploads use Xet)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from clirun import cli
from PIL import Image
from trees import make_tree

from uir25m import build, card, codec, manifest, planner, publish, subsets, subsetting
from uir25m.reader import read_member

FIVE_D_PLUS = ["reside_ots", "reside_sots", "rain100l", "bsd400", "wed", "gopro", "lol", "hide", "cdd11"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    """A build holding the 5d preset's streams and others it must not select (other sources of
    the same types, other types), with its card."""
    tmp = tmp_path_factory.mktemp("pub")
    raw = tmp / "raw"
    for name in FIVE_D_PLUS:
        make_tree(raw, name)
    recipe = tmp / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "pub", "shard_size": 2,
        "sources": [{"source": "reside_ots", "parts": ["beta"]}, {"source": "reside_sots", "parts": ["outdoor"]},
                    {"source": "rain100l", "parts": ["train"]}, {"source": "bsd400", "parts": ["all"], "synthesise": ["gn"]},
                    {"source": "wed", "parts": ["all"], "synthesise": ["gn", "j"]}, {"source": "gopro", "parts": ["train", "test"]},
                    {"source": "lol", "parts": "*"}, {"source": "hide", "parts": ["train"]}, {"source": "cdd11", "parts": ["train_mixed"]}],
        "synthetic": {"gn": {"variants": 3, "levels": ["gaussian_15", "gaussian_25", "gaussian_50"]}, "j": {"levels": ["q50"]}},
    }))
    plan, _ = planner.plan(planner.BuildSettings(recipe=str(recipe), raw=str(raw)))
    out = tmp / "ds"
    build.run_build(plan, out, progress=False)
    card.dataset_card(out)
    return out


def rows(root):
    return pq.read_table(root / manifest.SAMPLES).to_pylist()


def test_hf_config_5d_yields_exactly_the_presets_samples_intact(ds):
    datasets = pytest.importorskip("datasets")
    preset = subsets.load("5d")
    want = {r["key"]: r for r in rows(ds) if r["partition"] == "train" and preset.selection(r["type"], r["source"])}
    assert {r["type"] for r in want.values()} == {"h", "rs", "gn", "mb", "ll"}
    assert not any(r["source"] in ("hide", "reside_sots") for r in want.values())
    got = {}
    for ex in datasets.load_dataset(str(ds), "5d", split="train", streaming=True):
        got[ex["__key__"]] = ex
    assert set(got) == set(want)
    for key, ex in got.items():
        r = want[key]
        assert ex["json"] == {k: r[k] for k in manifest.LABEL_COLUMNS} and ex["cls"] == r["class_id"]
        for side in ("lq", "gt"):
            pixels = codec.decode_png(read_member(ds / r["shard"], r[f"{side}_offset"], r[f"{side}_size"]))
            assert np.array_equal(np.asarray(ex[f"{side}.png"].convert("RGB")), pixels)


def test_card_front_matter_and_body(ds):
    text = (ds / "README.md").read_text()
    assert text.startswith("---\n")
    fm = yaml.safe_load(text.split("---\n")[1])
    names = [c["config_name"] for c in fm["configs"]]
    assert names[:3] == ["all", "single", "mixed"] and "5d" in names and "gn" in names and "ll_h_r_s" in names
    assert "12d" in names and "rsd" not in names  # presets and types only where the data has them
    five = next(c for c in fm["configs"] if c["config_name"] == "5d")
    assert [s["split"] for s in five["data_files"]] == ["train", "test"]
    assert "data/train/single/h/h-reside_ots-*.tar" in five["data_files"][0]["path"]
    assert all(not p.startswith("data/train/single/h/h-reside_sots") for p in five["data_files"][0]["path"])
    info = {d["config_name"]: d for d in fm["dataset_info"]}
    assert set(info) == set(names) and {f["name"] for f in info["all"]["features"]} >= {"lq.png", "gt.png", "json", "cls"}
    assert fm["license"] == "other" and fm["task_categories"] == ["image-to-image"]
    assert "@inproceedings{nah2017deep" in text and "| `gopro`" in text and "redistribution" in text.lower()
    assert "`5d` | h: 1, rs: 300, gn: 15, mb: 5, ll: 60" in text
    assert Image.open(ds / card.CHART).format == "PNG" and "](stats.png)" in text


def test_repository_dataset_card_is_in_sync():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "DATASET_CARD.md")
    assert open(path, encoding="utf-8").read() == card.recipe_card("uir-2.5m"), \
        "DATASET_CARD.md is stale: run `uir-build card --recipe uir-2.5m --out DATASET_CARD.md`"


def test_subset_preset_with_links(ds, tmp_path):
    r = cli("uir-build", "subset", str(ds), "--preset", "5d", "--to", str(tmp_path / "five"), "--link", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["types"] == ["gn", "mb", "h", "rs", "ll"] and s["linked"] == s["shards"] and s["copied"] == 0
    sub = tmp_path / "five"
    got = {x["key"] for x in rows(sub)}
    preset = subsets.load("5d")
    assert got == {x["key"] for x in rows(ds) if preset.selection(x["type"], x["source"])}
    assert os.path.samefile(sub / rows(sub)[0]["shard"], ds / rows(sub)[0]["shard"])
    from uir25m import verify
    assert verify.verify(sub, decode=True)["ok"]
    info = manifest.read_build_json(sub)
    assert info["subset_of"]["preset"] == "5d" and info["summary"]["pairs"] == len(got)
    assert (sub / "README.md").is_file()
    with pytest.raises(subsetting.SubsetError, match="not empty"):
        subsetting.make_subset(ds, preset, sub)
    with pytest.raises(subsetting.SubsetError, match="holds none"):
        subsetting.make_subset(ds, subsets.from_codes("mr"), tmp_path / "none")


def test_push_to_a_folder_resends_nothing_on_a_rerun(ds, tmp_path):
    first = publish.push(ds, f"file://{tmp_path / 'pub'}", progress=False)
    assert first["sent"] == first["files"] == len(publish.files(ds)) and first["skipped"] == 0
    again = publish.push(ds, f"file://{tmp_path / 'pub'}", progress=False)
    assert again["sent"] == 0 and again["skipped"] == first["files"]
    for rel in publish.files(ds):
        assert (tmp_path / "pub" / rel).read_bytes() == (ds / rel).read_bytes()
    assert {p.name for p in (tmp_path / "pub" / "manifests").iterdir()} == {"samples.parquet", "shards.parquet", "rejects.parquet"}


def test_s3_push_repush_and_read_back(ds, s3_server, tmp_path):
    wds = pytest.importorskip("webdataset")
    env = s3_server.env
    target = f"s3://{s3_server.BUCKET}/uir/v1"
    r = cli("uir-build", "push", str(ds), "--to", target, "--endpoint-url", s3_server.url, "--json", env=env)
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["sent"] == first["files"] and first["skipped"] == 0
    r = cli("uir-build", "push", str(ds), "--to", target, "--endpoint-url", s3_server.url, "--json", env=env)
    again = json.loads(r.stdout)
    assert again["sent"] == 0 and again["skipped"] == first["files"]  # identical objects are skipped
    client = s3_server.client()
    listed = {o["Key"][len("uir/v1/"):] for page in client.get_paginator("list_objects_v2").paginate(Bucket="bucket", Prefix="uir/v1/")
              for o in page.get("Contents", [])}
    assert listed == set(publish.files(ds))
    shards = pq.read_table(ds / manifest.SHARDS).to_pylist()
    for s in shards:  # read back: the bytes that arrived are the shard
        body = client.get_object(Bucket="bucket", Key=f"uir/v1/{s['shard']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == s["sha256"]
    urls = [client.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": f"uir/v1/{s['shard']}"}, ExpiresIn=600)
            for s in shards]
    manifest_rows = {x["key"]: x for x in rows(ds)}
    seen = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):  # webdataset over the pushed copies
        row = manifest_rows[sample["__key__"]]
        assert hashlib.sha256(sample["lq.png"]).hexdigest() == row["lq_sha256"]
        assert hashlib.sha256(sample["gt.png"]).hexdigest() == row["gt_sha256"]
        seen += 1
    assert seen == len(manifest_rows)


def test_fake_hub_contract_lfs_push_exact_files_no_resend(ds, fake_hub):
    """Contract test of the Hub's legacy LFS upload protocol with the real huggingface_hub client
    (HF_HUB_DISABLE_XET=1): production uploads use Xet, which this does not exercise."""
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_not_a_real_token",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    r = cli("uir-build", "push", str(ds), "--to", "hf://tester/uir-test", "--json", env=env)
    assert r.returncode == 2 and "refusing to publish publicly" in r.stderr and "hf_not_a_real_token" not in r.stderr + r.stdout
    r = cli("uir-build", "push", str(ds), "--to", "hf://tester/uir-test", "--private", "--json", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hf_not_a_real_token" not in r.stdout + r.stderr
    repo = fake_hub.repos["tester/uir-test"]
    assert repo.private and set(repo.files) == set(publish.files(ds))
    for rel, data in repo.files.items():
        assert data == (ds / rel).read_bytes(), rel
    puts = fake_hub.puts
    assert puts > 0
    r = cli("uir-build", "push", str(ds), "--to", "hf://tester/uir-test", "--private", "--json", env=env)
    assert r.returncode == 0 and fake_hub.puts == puts  # a rerun sends no LFS object again
    r = cli("uir-build", "push", str(ds), "--to", "hf://tester/uir-public", "--i-hold-the-rights", "--json", env=env)
    assert r.returncode == 0 and not fake_hub.repos["tester/uir-public"].private
    # --private does not make an existing public repository private: the rights check still applies
    r = cli("uir-build", "push", str(ds), "--to", "hf://tester/uir-public", "--private", "--json", env=env)
    assert r.returncode == 2 and "refusing to publish publicly" in r.stderr


@pytest.mark.skipif(not (os.environ.get("HF_TOKEN") and os.environ.get("UIR_LIVE_HUB_REPO")),
                    reason="live Hub test: set HF_TOKEN and UIR_LIVE_HUB_REPO=user/name (a private scratch repo)")
def test_live_hub_push(ds):
    result = publish.push(ds, f"hf://{os.environ['UIR_LIVE_HUB_REPO']}", private=True, progress=False)
    assert result["files"] == len(publish.files(ds))


def test_hub_limits_are_checked_before_sending(tmp_path):
    many = [f"data/train/single/gn/gn-x-{i:06d}.tar" for i in range(10_000)]
    with pytest.raises(publish.PublishError, match="10000 files.*folder"):
        publish.check_hub_limits(tmp_path, many)
    with pytest.raises(publish.PublishError, match="fewer than 100000"):
        publish.check_hub_limits(tmp_path, [f"data/{i // 5000}/{i}.tar" for i in range(100_000)])


def test_push_refuses_an_incomplete_dataset(ds, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(ds, bad)
    (bad / "README.md").unlink()
    with pytest.raises(publish.PublishError, match="no dataset card"):
        publish.files(bad)
    with pytest.raises(publish.PublishError, match="unknown target"):
        publish.push(ds, "ftp://x/y")


def test_the_cards_loading_example_names_a_config_the_card_has(ds):
    """A dataset without 5d's sources (the demo: source skimage) gets an example config it defines."""
    import re

    text = (ds / "README.md").read_text()
    config = re.search(r'load_dataset\("<this repo or folder>", "([^"]+)"', text).group(1)
    names = re.findall(r"- config_name: (\S+)", text)
    assert config in names and config != "5d" or "5d" in names
