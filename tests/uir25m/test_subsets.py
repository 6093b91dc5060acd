import pytest

from uir25m import packaged, recipes, subsets, taxonomy


def test_packaged_manifests_are_found():
    assert {"5d", "12d", "single", "mixed", "all"} <= set(subsets.names())
    assert "demo" in packaged.names("recipes")
    with pytest.raises(FileNotFoundError, match="available: .*demo"):
        recipes.load("nope")


def test_5d_names_sources_and_the_papers_ratios():
    p = subsets.load("5d")
    assert [(s.code, s.sources, s.ratio) for s in p.select] == [
        ("h", ("reside_ots", "promptir", "adair"), 1), ("rs", ("rain100l", "promptir", "adair"), 300),
        ("gn", ("bsd400", "wed", "promptir", "adair"), 15), ("mb", ("gopro", "adair"), 5), ("ll", ("lol", "adair"), 60)]
    assert p.codes == ("gn", "mb", "h", "rs", "ll")


def test_12d_has_the_papers_13_codes_and_ratios():
    p = subsets.load("12d")
    ratios = {s.code: s.ratio for s in p.select}
    assert ratios == {"gn": 4, "rn": 4, "mb": 1, "db": 20, "gb": 1, "j": 4, "h": 5, "rs": 8, "rd": 180,
                      "s": 58, "ms": 4, "ll": 30, "mr": 6}
    assert all(s.sources for s in p.select)  # every 12d entry names its sources


def test_group_presets():
    assert subsets.load("single").codes == taxonomy.in_group("single")
    assert subsets.load("mixed").codes == taxonomy.in_group("mixed")
    assert subsets.load("all").codes == taxonomy.CODES


def test_weights_are_ratio_times_source_pairs():
    p = subsets.load("5d")
    counts = {("h", "reside_ots"): 72135, ("rs", "rain100l"): 200, ("gn", "bsd400"): 400, ("gn", "wed"): 4744,
              ("mb", "gopro"): 2103, ("ll", "lol"): 485, ("h", "reside_its"): 13990}
    w = subsets.weights(p, counts)
    assert ("h", "reside_its") not in w and w[("rs", "rain100l")] == 60000 and w[("gn", "wed")] == 15 * 4744
    shares = subsets.shares(w)
    assert shares["h"] == pytest.approx(72135 / sum(w.values()))
    assert 0.28 < shares["h"] < 0.30  # DESIGN §3: ~29 % of draws
    assert sum(shares.values()) == pytest.approx(1)


def test_preset_errors_name_the_problem():
    with pytest.raises(subsets.PresetError, match="unknown degradation code 'fog'.*valid codes"):
        subsets.parse({"select": [{"type": "fog", "ratio": 1}]})
    with pytest.raises(subsets.PresetError, match="ratio"):
        subsets.parse({"select": [{"type": "gn", "ratio": 0}]})
    with pytest.raises(subsets.PresetError, match="twice"):
        subsets.parse({"select": [{"type": "gn", "sources": ["a"]}, {"type": "gn", "sources": ["a"]}]})
    with pytest.raises(subsets.PresetError, match="no type 'h'"):
        subsets.from_codes("gn").with_ratios({"h": 2})


def test_counts_on_a_build_count_tiles_of_one_pair_once(demo_dir):
    counts = subsets.source_pair_counts(demo_dir)
    assert len(counts) == 19
    # 2 train samples per type from distinct (image, variant) -> 2 source pairs each
    assert set(counts.values()) == {2}


def test_every_source_a_preset_names_is_catalogued():
    from uir25m import sources
    catalogued = set(sources.names())
    for name in subsets.names():
        for sel in subsets.load(name).select:
            assert set(sel.sources or ()) <= catalogued, f"{name}: {set(sel.sources) - catalogued}"
