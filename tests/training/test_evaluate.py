"""Evaluation: an identity model scores exactly the LQ's own PSNR/SSIM (computed independently
here), padding and cropping for odd sizes, report rendering, and `uir-train eval` on the demo
dataset with a real export."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from trainruns import Identity, cli

from training import evaluate, metrics, pairs
from training.pairs import Pair


def ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR-style SSIM on 0-255 arrays (11x11 Gaussian sigma 1.5, valid region, channel mean)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.T)

    def f(z):
        return cv2.filter2D(z, -1, win)[5:-5, 5:-5]

    out = []
    for ch in range(3):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        m1, m2 = f(x), f(y)
        s1, s2, s12 = f(x * x) - m1**2, f(y * y) - m2**2, f(x * y) - m1 * m2
        out.append((((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1**2 + m2**2 + c1) * (s1 + s2 + c2))).mean())
    return float(np.mean(out))


@pytest.fixture(scope="module")
def demo_pairs(demo_dir):
    return list(pairs.iter_pairs(str(demo_dir), partition="test"))


def test_identity_model_scores_the_lq_itself(demo_pairs, tmp_path):
    report = evaluate.evaluate(Identity(), demo_pairs, progress=False, save_images=tmp_path / "imgs")
    assert report["count"] == len(demo_pairs) == 19
    for row, pair in zip(report["images"], demo_pairs):
        assert row["key"] == pair.key
        # float32 images, as BasicSR (k / 255 rounded to 24 bits): ~1e-6 dB off float64 at 40 dB
        assert row["psnr"] == pytest.approx(ref_psnr(pair.lq, pair.gt), abs=1e-5)
        assert row["ssim"] == pytest.approx(ref_ssim(pair.lq, pair.gt), abs=1e-6)
        saved = cv2.imread(str(tmp_path / "imgs" / pair.code / f"{pair.key}.png"))[..., ::-1]
        assert np.array_equal(saved, pair.lq)  # the restoration of an identity model is the LQ
    codes = list(dict.fromkeys(p.code for p in demo_pairs))
    assert list(report["types"]) == codes
    for code in codes:
        mine = [ref_psnr(p.lq, p.gt) for p in demo_pairs if p.code == code]
        assert report["types"][code]["count"] == len(mine)
        assert report["types"][code]["psnr"] == pytest.approx(np.mean(mine), abs=1e-5)
    per_type = [report["types"][c]["psnr"] for c in codes]
    assert report["mean_over_types"]["psnr"] == pytest.approx(np.mean(per_type), abs=1e-9)
    assert report["mean_over_images"]["psnr"] == pytest.approx(np.mean([ref_psnr(p.lq, p.gt) for p in demo_pairs]))
    # 8-bit LQ needs no rounding: image_range 255 gives the same numbers (exactly the float64 formula)
    r255 = evaluate.evaluate(Identity(), demo_pairs[:3], image_range=255, progress=False)
    assert [r["psnr"] for r in r255["images"]] == pytest.approx([ref_psnr(p.lq, p.gt) for p in demo_pairs[:3]], abs=1e-9)


def test_odd_sizes_pad_and_crop_back():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    lq = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    pair = Pair("odd", "gn", "test", {}, lq, gt)
    row = evaluate.evaluate(Identity(), [pair], progress=False)["images"][0]
    assert row["psnr"] == pytest.approx(ref_psnr(lq, gt), abs=1e-5)
    assert row["ssim"] == pytest.approx(ref_ssim(lq, gt), abs=1e-6)


def test_perceptual_scores_and_rendering(demo_pairs):
    seen = []

    def nr(x):
        seen.append(("nr", x.shape))
        return x.mean()

    def fr(x, y):
        seen.append(("fr", x.shape, y.shape))
        return (x - y).abs().mean()

    extra = [metrics.PerceptualMetric("fake_nr", False, True, nr),
             metrics.PerceptualMetric("fake_fr", True, True, fr)]
    perfect = Pair("same", "gn", "test", {}, demo_pairs[0].gt, demo_pairs[0].gt)
    report = evaluate.evaluate(Identity(), [perfect, *demo_pairs[:2]], perceptual=extra, progress=False)
    assert {s[0] for s in seen} == {"nr", "fr"} and len(seen) == 6
    first = report["images"][0]
    assert first["psnr"] == math.inf and first["ssim"] == pytest.approx(1.0) and first["fake_fr"] == 0.0
    assert first["fake_nr"] == pytest.approx(demo_pairs[0].gt.mean() / 255, abs=1e-6)
    assert report["protocol"]["metrics"] == ["psnr", "ssim", "fake_nr", "fake_fr"]
    doc = json.loads(evaluate.to_json(report))  # strict JSON: the infinite PSNR becomes null
    assert doc["images"][0]["psnr"] is None and doc["images"][1]["psnr"] > 0
    md = evaluate.to_markdown(report, title="t")
    assert "| type | images | PSNR | SSIM | fake_nr ↓ | fake_fr ↓ |" in md and "| gn | 2 | inf |" in md
    assert "**mean over types**" in md and "**mean over images**" in md


def write_export(path: Path) -> None:
    from training import archs

    torch.manual_seed(0)
    model = archs.create_arch("nafnet_tiny")
    torch.save({"arch": "nafnet_tiny", "arch_kwargs": {},
                "state_dict": {k: v for k, v in model.state_dict().items() if "mask_token" not in k}}, path)


def test_cli_eval_on_demo(demo_dir, demo_pairs, tmp_path):
    export = tmp_path / "export.pt"
    write_export(export)
    out = cli("uir-train", "eval", "--checkpoint", str(export), "--data", str(demo_dir), "--json", "--quiet",
              "--device", "cpu", "--save-images", str(tmp_path / "imgs"), "--out", str(tmp_path / "report.json"))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert json.loads((tmp_path / "report.json").read_text()) == doc
    from uir25m import subsets
    assert list(doc["types"]) == list(subsets.load("all").codes) and doc["missing_types"] == []
    assert doc["arch"] == "nafnet_tiny" and doc["kind"] == "export" and doc["count"] == 19
    for row in [*doc["types"].values(), doc["mean_over_types"], doc["mean_over_images"]]:
        assert math.isfinite(row["psnr"]) and 0 < row["psnr"] < 100 and -1 <= row["ssim"] <= 1
    saved = sorted((tmp_path / "imgs").rglob("*.png"))
    assert len(saved) == 19
    for pair in demo_pairs:
        img = cv2.imread(str(tmp_path / "imgs" / pair.code / f"{pair.key}.png"))
        assert img.shape == pair.gt.shape

    md = cli("uir-train", "eval", "--checkpoint", str(export), "--data", str(demo_dir), "--types", "gn,h",
             "--image-range", "255", "--quiet", "--device", "cpu")
    assert md.returncode == 0, md.stderr
    assert "| type | images | PSNR | SSIM |" in md.stdout and "| gn | 1 |" in md.stdout and "| h | 1 |" in md.stdout
    assert "image_range 255" in md.stdout and "| **mean over types** | 2 types |" in md.stdout


def test_cli_eval_bad_checkpoints(demo_dir, tmp_path):
    missing = tmp_path / "nope.pt"
    out = cli("uir-train", "eval", "--checkpoint", str(missing), "--data", str(demo_dir))
    assert out.returncode == 2 and str(missing) in out.stderr and "no such checkpoint" in out.stderr
    junk = tmp_path / "notes.txt"
    junk.write_text("not a checkpoint")
    out = cli("uir-train", "eval", "--checkpoint", str(junk), "--data", str(demo_dir))
    assert out.returncode == 2 and str(junk) in out.stderr and "not a readable" in out.stderr
