"""Every catalogued source: its manifest validates, and each part finds exactly the expected pairs
in a miniature tree with the dataset's real folder and file names."""
import pytest

from uir25m import sources
from uir25m.sources import paths

from trees import TREES, make_tree  # tests/uir25m is on sys.path (conftest)


def test_every_manifest_validates_and_has_a_tree():
    names = sources.names()
    assert len(names) >= 23
    for name in names:
        spec = sources.load(name)
        assert spec.citation.strip().startswith("@") and spec.title and spec.dirs
        for p in spec.parts:
            assert p.layout in sources.LAYOUTS
        if spec.layout_verified:
            assert name in TREES, f"{name} is marked layout_verified but has no miniature-tree test"


@pytest.mark.parametrize("name", sorted(TREES))
def test_parts_find_the_expected_pairs(name, tmp_path):
    folder = make_tree(tmp_path, name)
    spec = sources.load(name)
    root, _ = sources.find_root(spec, tmp_path)
    assert root == folder
    index = sources.walk(root)
    expected = TREES[name][1]
    assert set(expected) == {p.name for p in spec.parts}, "the tree covers every part"
    for part in spec.parts:
        scan = part.scan(index)
        got = sorted((pr.lq, pr.gt) for pr in scan.pairs)
        assert got == sorted(expected[part.name]), f"{name}/{part.name}"
        assert not [r for r in scan.rejects if r[1] == "missing_partner"], f"{name}/{part.name}: {scan.rejects}"


def test_globs():
    rx = paths.glob_regex
    assert rx("train/*/blur/*.png").fullmatch("train/GOPR1/blur/000001.png")
    assert not rx("train/*/blur/*.png").fullmatch("train/a/b/blur/000001.png")
    assert rx("hazy/**/*.jpg").fullmatch("hazy/x.jpg") and rx("hazy/**/*.jpg").fullmatch("hazy/p1/p2/x.jpg")
    assert rx("outdoor/[cg]*/*").fullmatch("outdoor/gt/1.png") and not rx("outdoor/[cg]*/*").fullmatch("outdoor/hazy/1.png")
    assert rx("a?.png").fullmatch("ab.png") and not rx("a?.png").fullmatch("a/.png")


def test_bad_manifests_fail_naming_the_key():
    base = {"name": "x", "title": "X", "licence": "unknown", "redistribution": "unknown", "dirs": ["X"],
            "parts": [{"name": "a", "type": "mb", "partition": "train", "layout": "parallel",
                       "params": {"lq_dir": "a", "gt_dir": "b"}}]}
    sources.parse(base)
    for change, match in [
        ({"redistribution": "maybe"}, "redistribution"),
        ({"name": "X-Y"}, "source name"),
        ({"parts": [{**base["parts"][0], "layout": "zip"}]}, "unknown layout"),
        ({"parts": [{**base["parts"][0], "params": {"lq_dir": "a"}}]}, "missing \\['gt_dir'\\]"),
        ({"parts": [{**base["parts"][0], "type": "fog"}]}, "unknown degradation code 'fog'"),
        ({"parts": [{**base["parts"][0], "partition": "val"}]}, "partition"),
        ({"bogus": 1}, "unknown keys"),
    ]:
        with pytest.raises(sources.SourceError, match=match):
            sources.parse({**base, **change})
