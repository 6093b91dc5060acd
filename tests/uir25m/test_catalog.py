"""`uir-build sources list` and `sources check`."""
import json

from clirun import cli
from trees import TREES, image, make_tree

from uir25m import catalog, sources


def test_listing_covers_the_catalogue():
    rows = catalog.listing()
    assert [r["name"] for r in rows] == list(sources.names())
    for r in rows:
        assert r["licence"] and r["redistribution"] in ("yes", "no", "unknown") and r["types"]
        assert isinstance(r["layout_verified"], bool) and r["parts"]
    text = catalog.format_listing(rows)
    assert f"{len(rows)} sources" in text and "gopro" in text


def test_check_reports_exactly_the_three_present_datasets(tmp_path):
    for name in ("gopro", "lol", "cdd11"):
        make_tree(tmp_path, name)
    image(tmp_path / "LOLdataset/our485/low/999.png")  # an LQ without its GT
    image(tmp_path / "GOPRO_Large/train/GOPR0372_07_00/sharp/000099.png")  # a GT without its LQ
    c = catalog.check(tmp_path)
    assert sorted(s["source"] for s in c["present"]) == ["cdd11", "gopro", "lol"]
    assert len(c["absent"]) == len(sources.names()) - 3
    by = {s["source"]: s for s in c["present"]}
    lol = {p["part"]: p for p in by["lol"]["parts"]}
    assert lol["our485"]["found"] == len(TREES["lol"][1]["our485"]) and lol["our485"]["unpaired_lq"] == 1
    assert lol["our485"]["expected"] == 485 and lol["our485"]["status"] == "fewer"
    assert by["gopro"]["unpaired_gt"] == 1
    assert {p["part"]: p["found"] for p in by["cdd11"]["parts"]}["train_mixed"] == 7


def test_cli(tmp_path):
    make_tree(tmp_path, "raindrop")
    r = cli("uir-build", "sources", "list", "--json")
    assert r.returncode == 0 and {row["name"] for row in json.loads(r.stdout)} == set(sources.names())
    r = cli("uir-build", "sources", "check", "--root", str(tmp_path), "--json")
    assert r.returncode == 0 and [s["source"] for s in json.loads(r.stdout)["present"]] == ["raindrop"]
    r = cli("uir-build", "sources", "check", "--root", str(tmp_path))
    assert "raindrop:" in r.stdout and "present: 1" in r.stdout
    r = cli("uir-build", "sources", "check")
    assert r.returncode == 2 and "--root" in r.stderr
