import pytest

from uir25m import degrade, recipes, taxonomy


def test_demo_recipe_covers_every_type_with_valid_levels():
    r = recipes.load("demo")
    assert set(r.synthetic) == set(taxonomy.CODES)
    for code, t in r.synthetic.items():
        assert all(level in degrade.get(code).levels for level in t.levels)


def test_variants_cycle_through_levels_per_image():
    t = recipes.parse({"name": "x", "synthetic": {"gn": {"variants": 3, "levels": ["gaussian_15", "gaussian_25", "gaussian_50"]}}}).synthetic["gn"]
    for ident in ("a.png", "b.png", "c.png"):
        assert sorted(t.level_for(v, ident) for v in range(3)) == ["gaussian_15", "gaussian_25", "gaussian_50"]


@pytest.mark.parametrize("data,match", [
    ({"name": "x", "bogus": 1}, "unknown keys"),
    ({"name": "x", "synthetic": {"fog": {}}}, "unknown degradation code 'fog'"),
    ({"name": "x", "synthetic": {"gn": {"levels": ["nope"]}}}, "unknown level 'nope'"),
    ({"name": "x", "synthetic": {"gn": {"levels": ["gaussian"], "params": {"gaussian": {"var_limit": 3}}}}}, "unknown parameter 'var_limit'"),
    ({"name": "x", "synthetic": {"gn": {"levels": ["gaussian"], "params": {"gaussian": {"sigma": {"uniform": [5, 1]}}}}}}, "lo <= hi"),
    ({"name": "x", "synthetic": {"gn": {"variants": 0}}}, "variants"),
    ({"name": "x", "shard_size": 0}, "shard_size"),
])
def test_bad_recipes_fail_naming_the_key(data, match):
    with pytest.raises(recipes.RecipeError, match=match):
        recipes.parse(data)


def test_resolved_recipe_spells_out_every_distribution():
    r = recipes.parse({"name": "x", "synthetic": {"gn": {"levels": ["gaussian", "poisson"],
                                                          "params": {"gaussian": {"sigma": {"uniform": [5, 9]}}}}}})
    levels = r.resolved()["synthetic"]["gn"]["levels"]
    assert levels["gaussian"] == {"noise": "gaussian", "sigma": {"uniform": [5, 9]}}
    assert levels["poisson"] == degrade.get("gn").levels["poisson"]


def test_build_json_records_the_resolved_recipe(demo_dir):
    from uir25m import manifest
    info = manifest.read_build_json(demo_dir)
    assert info["recipe"] == recipes.load("demo").resolved()
    assert set(info["versions"]) >= {"numpy", "opencv", "pillow", "uir25m"}
