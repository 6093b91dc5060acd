"""Contract tests over every registered degradation, plus the type-specific checks."""
import json
import warnings

import cv2
import numpy as np
import pytest
import skimage.data

from uir25m import degrade, taxonomy
from uir25m.degrade import jpeg, mosaic, params as dparams


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A textured RGB crop of odd size."""
    return np.ascontiguousarray(skimage.data.astronaut()[100:197, 150:277])


def levels(code):
    return list(degrade.get(code).levels)


ALL = [(c, lvl) for c in taxonomy.CODES for lvl in levels(c)]
FIXED = {("j", "q50"), ("ms", "bilinear"), ("ms", "edge_aware"), ("ms", "vng")}  # levels with nothing to draw


def test_registry_covers_the_taxonomy_in_order():
    assert degrade.codes() == taxonomy.CODES
    with pytest.raises(ValueError, match="registered twice"):
        degrade.register("gn", levels={"x": {}}, sample_params=lambda *a: {}, apply=lambda i: i)
    with pytest.raises(taxonomy.UnknownTypeError):
        degrade.get("fog")


@pytest.mark.parametrize("code,level", ALL)
def test_deterministic_per_seed_and_changes_the_image(code, level, image):
    p1 = degrade.sample(code, np.random.default_rng(123), level)
    p2 = degrade.sample(code, np.random.default_rng(123), level)
    assert p1 == p2
    assert json.loads(json.dumps(p1)) == p1  # JSON-able, and exact after a round trip
    out1 = degrade.apply(code, image, p1)
    out2 = degrade.apply(code, image.copy(), json.loads(json.dumps(p1)))
    assert out1.dtype == np.uint8 and out1.shape == image.shape
    assert np.array_equal(out1, out2)
    mad = np.abs(out1.astype(np.int16) - image).mean()
    assert mad > 0.5, f"{code}/{level} barely changes the image (mean abs diff {mad:.3f})"
    # another seed gives other params (and, with them, other pixels)
    others = [degrade.sample(code, np.random.default_rng(s), level) for s in range(124, 130)]
    assert any(o != p1 for o in others) != ((code, level) in FIXED)


@pytest.mark.parametrize("code", taxonomy.CODES)
def test_apply_is_pure(code, image):
    before = image.copy()
    p = degrade.sample(code, np.random.default_rng(5), degrade.get(code).default_level)
    degrade.apply(code, image, p)
    assert np.array_equal(image, before)


def test_no_warnings(image):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for code in taxonomy.CODES:
            p = degrade.sample(code, np.random.default_rng(1), degrade.get(code).default_level)
            degrade.apply(code, image, p)


def test_gaussian_noise_sigma_is_exact():
    flat = np.full((256, 256, 3), 128, np.uint8)
    for sigma in (15, 25, 50):
        p = degrade.sample("gn", np.random.default_rng(0), f"gaussian_{sigma}")
        assert p["sigma"] == sigma
        out = degrade.apply("gn", flat, p).astype(np.float64)
        assert abs(out.std() - sigma) < 0.02 * sigma  # rounded, not truncated: no shortfall
        assert abs(out.mean() - 128) < 0.5


def test_jpeg_lq_is_the_decoded_jpeg_at_the_recorded_quality(image):
    p = degrade.sample("j", np.random.default_rng(3), "any")
    out = degrade.apply("j", image, p)
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, p["quality"]])
    expected = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(out, expected)
    assert np.array_equal(out, jpeg.decode_jpeg(jpeg.encode_jpeg(image, p["quality"])))


@pytest.mark.parametrize("method", list(mosaic.DEMOSAIC))
def test_demosaic_of_pure_red_stays_red(method):
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    out = degrade.apply("ms", red, {"demosaic": method})
    inner = out[4:-4, 4:-4].astype(int)
    assert (inner[..., 0] > 180).all() and (inner[..., 1:] < 20).all()


def test_mosaic_samples_rggb():
    rgb = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30)], axis=2)
    assert mosaic.mosaic_rggb(rgb).tolist() == [[10, 20, 10, 20], [20, 30, 20, 30]] * 2


def test_ll_h_r_s_has_cdd11s_seven_combinations(image):
    lv = degrade.get("ll_h_r_s").levels
    assert set(lv) == {"low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow", "low_haze_rain", "low_haze_snow"}
    for name, spec in lv.items():
        ops = {op for op, _ in spec["stages"]}
        expected = {"low": "ll", "haze": "h", "rain": "rs", "snow": "s"}
        assert ops == {expected[w] for w in name.split("_")}


def test_mixed_stage_params_name_real_ops():
    p = degrade.sample("ds_n_b_j", np.random.default_rng(2), "realesrgan")
    ops = [s["op"] for s in p["stages"]]
    assert ops[0] == "gb" and "j" in ops and "gn" in ops and ops.count("resize") >= 2
    for s in p["stages"]:
        assert s["op"] == "resize" or s["op"] in taxonomy.CODES


def test_haze_follows_the_scattering_model(image):
    p = degrade.sample("h", np.random.default_rng(9), "its")
    out = degrade.apply("h", image, p).astype(np.float64) / 255
    # I = J t + A (1 - t) with t in (0, 1]: every pixel moves towards A
    j = image.astype(np.float64) / 255
    assert np.all(np.abs(out - p["A"]) <= np.abs(j - p["A"]) + 2 / 255)


def test_recipe_override_changes_the_distribution():
    p = degrade.sample("gn", np.random.default_rng(0), "gaussian", {"sigma": {"uniform": [40, 41]}})
    assert 40 <= p["sigma"] <= 41


def test_params_language():
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert dparams.draw(rng, {"odd": [6, 10]}) in (7, 9)
        assert 2 <= dparams.draw(rng, {"int": [2, 3]}) <= 3
        assert 0.1 <= dparams.draw(rng, {"loguniform": [0.1, 10]}) <= 10
        assert dparams.draw(rng, {"choice": ["a", "b"], "p": [0, 1]}) == "b"
    assert dparams.draw(rng, [1, 2]) == [1, 2]  # lists are constants
    assert dparams.round6(1.23456789) == 1.23457
    a = dparams.draw_all(np.random.default_rng(1), {"x": {"uniform": [0, 1]}, "y": {"uniform": [0, 1]}})
    b = dparams.draw_all(np.random.default_rng(1), {"y": {"uniform": [0, 1]}, "x": {"uniform": [0, 1]}})
    assert a == b  # key order in YAML never changes a draw
    for bad in ({"x": {"uniform": [2, 1]}}, {"x": {"odd": [2, 2]}}, {"x": {"loguniform": [0, 1]}},
                {"x": {"choice": []}}, {"x": {"uniform": [0, 1], "int": [0, 1]}}):
        with pytest.raises(ValueError, match="x"):
            dparams.validate(bad)
