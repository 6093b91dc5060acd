"""End to end through the CLI: the 5d and test-5d recipes built from the folders all-in-one restoration
users already have (PromptIR/AirNet's data/Train and test/, AdaIR's data/Train and data/test), with
small real images, then `uir-build stats`."""
import json
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from clirun import cli
from trees import TREES, image

from uir25m import manifest


def write_tree(folder: Path, source: str) -> Path:
    """The miniature tree of `source` under `folder`, as 32 x 32 images (plus its text decoys)."""
    files, _, *rest = TREES[source]
    for rel in files:
        image(folder / rel, size=(32, 32), seed=zlib.crc32(f"{source}/{rel}".encode()))
    for rel, text in (rest[0] if rest else {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def pairs_of(source: str) -> int:
    return sum(len(v) for v in TREES[source][1].values())


def build(out: Path, recipe: str, *args: str) -> dict:
    r = cli("uir-build", "build", "--recipe", recipe, *args, "--out", str(out), "--workers", "1", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    s = cli("uir-build", "stats", str(out), "--json")
    assert s.returncode == 0, s.stderr
    return json.loads(s.stdout)


def streams(stats: dict) -> dict[tuple[str, str, str], int]:
    return {(r["partition"], r["type"], r["source"]): r["pairs"] for r in stats["rows"]}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("allinone")
    write_tree(raw / "AdaIR/data", "adair")
    write_tree(raw / "AdaIR/data/test", "allinone_test")
    write_tree(raw / "PromptIR/data", "promptir")
    write_tree(raw / "GOPRO_Large", "gopro")
    write_tree(raw / "LOLdataset", "lol")
    return raw


def test_5d_from_the_adair_layout_alone(raw, tmp_path):
    stats = build(tmp_path / "out", "5d", "--source", f"adair={raw}/AdaIR/data")
    t = TREES["adair"][1]
    assert streams(stats) == {("train", "h", "adair"): len(t["dehaze"]), ("train", "rs", "adair"): len(t["derain"]),
                              ("train", "gn", "adair"): 3 * len(t["denoise"]),  # sigma 15/25/50 per clean image
                              ("train", "mb", "adair"): len(t["deblur"]), ("train", "ll", "adair"): len(t["enhance"])}
    rows = pq.read_table(tmp_path / "out" / manifest.SAMPLES).to_pylist()
    shipped = {(r["source_lq"], r["source_gt"]) for r in rows if r["source_lq"]}
    for part in ("dehaze", "derain", "deblur", "enhance"):
        assert set(t[part]) <= shipped, part
    assert {r["source_gt"] for r in rows if r["type"] == "gn"} == {gt for _, gt in t["denoise"]}
    assert all(r["real"] for r in rows if r["type"] == "ll") and not any(r["real"] for r in rows if r["type"] != "ll")
    assert {r["variant"] for r in rows if r["type"] == "mb"} == {"blur"}


def test_5d_from_the_promptir_layout_with_gopro_and_lol(raw, tmp_path):
    stats = build(tmp_path / "out", "5d", "--source", f"promptir={raw}/PromptIR/data",
                  "--source", f"gopro={raw}/GOPRO_Large", "--source", f"lol={raw}/LOLdataset")
    t = TREES["promptir"][1]
    assert streams(stats) == {("train", "h", "promptir"): len(t["dehaze"]), ("train", "rs", "promptir"): len(t["derain"]),
                              ("train", "gn", "promptir"): 3 * len(t["denoise"]),
                              ("train", "mb", "gopro"): len(TREES["gopro"][1]["train"]),
                              ("train", "ll", "lol"): len(TREES["lol"][1]["our485"])}
    assert stats["types"] == 5


def test_both_layouts_found_under_one_root(raw, tmp_path):
    """--root: each checkout's data/ is its own source (AdaIR's is not taken for PromptIR's)."""
    stats = build(tmp_path / "out", "5d", "--root", str(raw))
    got = streams(stats)
    assert {s for _, _, s in got} == {"adair", "promptir", "gopro", "lol"}
    assert got[("train", "mb", "adair")] == len(TREES["adair"][1]["deblur"])
    assert got[("train", "h", "promptir")] == len(TREES["promptir"][1]["dehaze"])


def test_test_5d_from_the_adair_test_folder(raw, tmp_path):
    stats = build(tmp_path / "out", "test-5d", "--source", f"allinone_test={raw}/AdaIR/data/test")
    t = TREES["allinone_test"][1]
    assert streams(stats) == {("test", "h", "allinone_test"): len(t["dehaze"]), ("test", "rs", "allinone_test"): len(t["derain"]),
                              ("test", "gn", "allinone_test"): len(t["bsd68"]),  # one sigma (25) per image
                              ("test", "mb", "allinone_test"): len(t["gopro"]), ("test", "ll", "allinone_test"): len(t["lol"])}
    assert stats["pairs"] == sum(streams(stats).values()) < pairs_of("allinone_test")  # urban100, kodak24 not in test-5d
