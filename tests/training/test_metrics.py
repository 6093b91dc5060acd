"""PSNR/SSIM with the paper's protocol, checked against independent formulas (numpy MSE PSNR and
a BasicSR-style SSIM with cv2) on real images; the optional pyiqa extra's error messages."""
from __future__ import annotations

import sys
import types
import urllib.error

import cv2
import numpy as np
import pytest
from skimage import data

from training import metrics


def ref_psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR's `_ssim` per channel on 0-255 arrays: 11x11 Gaussian (sigma 1.5), valid region [5:-5]."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(k, k.T)
    scores = []
    for ch in range(3):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        mu1 = cv2.filter2D(x, -1, window)[5:-5, 5:-5]
        mu2 = cv2.filter2D(y, -1, window)[5:-5, 5:-5]
        s1 = cv2.filter2D(x * x, -1, window)[5:-5, 5:-5] - mu1**2
        s2 = cv2.filter2D(y * y, -1, window)[5:-5, 5:-5] - mu2**2
        s12 = cv2.filter2D(x * y, -1, window)[5:-5, 5:-5] - mu1 * mu2
        m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
        scores.append(m.mean())
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def images():
    """Real pictures: GT crops and float 'restorations' (noisy, blurred, some values outside [0, 1])."""
    rng = np.random.default_rng(0)
    out = []
    for gt in (data.astronaut()[100:196, 150:277], data.chelsea()[40:123, 60:201], data.coffee()[:71, :90]):
        noisy = gt / 255.0 + rng.normal(0, 0.08, gt.shape)  # reaches outside [0, 1]: clamped
        blurred = cv2.GaussianBlur(gt, (7, 7), 2.0) / 255.0
        out += [(gt, noisy), (gt, blurred.astype(np.float32))]
    return out


def test_psnr_matches_mse_formula(images):
    for gt, img in images:
        clamped = np.clip(img.astype(np.float64), 0, 1)
        assert metrics.psnr(img, gt, 1.0) == pytest.approx(ref_psnr(clamped, gt / 255.0, 1.0), abs=1e-6)
        assert metrics.psnr(img, gt, 255) == pytest.approx(ref_psnr(np.round(clamped * 255), gt, 255.0), abs=1e-6)
    gt, img = images[0]
    assert metrics.psnr(img, gt, 1.0) != pytest.approx(metrics.psnr(img, gt, 255), abs=1e-4)  # quantising matters


def test_ssim_matches_basicsr_formula(images):
    for gt, img in images:
        clamped = np.clip(img.astype(np.float64), 0, 1)
        assert metrics.ssim(img, gt, 1.0) == pytest.approx(ref_ssim(clamped * 255, gt), abs=1e-6)
        assert metrics.ssim(img, gt, 255) == pytest.approx(ref_ssim(np.round(clamped * 255), gt), abs=1e-6)
    assert metrics.ssim(images[1][1], images[1][0]) > metrics.ssim(images[0][1], images[0][0])  # blur beats noise here


def test_uint8_inputs_and_identical_images():
    gt = data.astronaut()[:64, :80]
    lq = cv2.GaussianBlur(gt, (5, 5), 1.5)
    assert metrics.psnr(lq, gt) == pytest.approx(ref_psnr(lq / 255.0, gt / 255.0, 1.0), abs=1e-6)
    assert metrics.psnr(lq, gt, 255) == pytest.approx(metrics.psnr(lq, gt, 1.0), abs=1e-9)  # uint8 needs no rounding
    assert metrics.ssim(lq, gt) == pytest.approx(ref_ssim(lq, gt), abs=1e-6)
    # identical images: PSNR is +inf (BasicSR), SSIM 1
    assert metrics.psnr(gt, gt) == float("inf") and metrics.psnr(gt / 255.0, gt, 1.0) == float("inf")
    assert metrics.ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)


def test_bad_inputs():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in size"):
        metrics.psnr(a, np.zeros((16, 17, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim(a[:10], a[:10])
    with pytest.raises(ValueError, match="image_range"):
        metrics.psnr(a, a, 2.0)
    with pytest.raises(ValueError, match="RGB"):
        metrics.psnr(a[..., 0], a[..., 0])


# ---------------------------------------------------------------- pyiqa extra (not installed here)

def test_missing_pyiqa_names_the_extra(monkeypatch):
    monkeypatch.setattr(metrics, "_torchvision_needs_shim", lambda: False)
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # makes `import pyiqa` raise ModuleNotFoundError
    with pytest.raises(metrics.MetricUnavailable) as e:
        metrics.perceptual_metric("lpips")
    assert "pip install 'uir25m[metrics]'" in str(e.value) and "PolyForm Noncommercial" in str(e.value)
    assert isinstance(e.value, ValueError)  # the CLI prints it and exits 2


def test_broken_pyiqa_import(monkeypatch):
    monkeypatch.setattr(metrics, "_torchvision_needs_shim", lambda: False)

    def fail(name):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(metrics.importlib, "import_module", fail)
    with pytest.raises(metrics.MetricUnavailable, match="does not import.*torchvision::nms"):
        metrics.import_pyiqa()


def fake_pyiqa(create):
    module = types.ModuleType("pyiqa")
    module.list_models = lambda: ["piqe", "lpips", "brisque"]
    module.create_metric = create
    return module


def test_offline_weights_message_names_url_and_destination(monkeypatch, tmp_path):
    monkeypatch.setattr(metrics, "_torchvision_needs_shim", lambda: False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def download_url_to_file(url, dst, hash_prefix=None, progress=True):  # what torch.hub's download looks like
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    def create(name, **kwargs):
        download_url_to_file("https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/brisque_svm_weights.pth",
                             str(metrics.pyiqa_cache_dir() / "brisque_svm_weights.pth"))

    monkeypatch.setitem(sys.modules, "pyiqa", fake_pyiqa(create))
    with pytest.raises(metrics.MetricUnavailable) as e:
        metrics.perceptual_metric("brisque")
    msg = str(e.value)
    assert "'brisque'" in msg and "URLError" in msg and "brisque_svm_weights.pth" in msg
    assert str(tmp_path / "torch" / "hub" / "pyiqa" / "brisque_svm_weights.pth") in msg
    with pytest.raises(metrics.MetricUnavailable, match="no metric 'fid2'.*brisque, lpips, piqe"):
        metrics.perceptual_metric("fid2")

    def offline_hub(name, **kwargs):  # huggingface_hub's LocalEntryNotFoundError is a FileNotFoundError
        raise FileNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setitem(sys.modules, "pyiqa", fake_pyiqa(offline_hub))
    with pytest.raises(metrics.MetricUnavailable, match="'lpips'.*FileNotFoundError") as e:
        metrics.perceptual_metric("lpips")
    assert str(tmp_path / "torch" / "hub" / "pyiqa") in str(e.value) and "IQA-PyTorch-Weights" in str(e.value)


def test_perceptual_metric_wraps_pyiqa(monkeypatch):
    import torch

    seen = {}

    class NoReference(torch.nn.Module):
        metric_mode, lower_better = "NR", True

        def forward(self, x):
            seen["shape"], seen["range"] = tuple(x.shape), (float(x.min()), float(x.max()))
            return x.mean()

    monkeypatch.setattr(metrics, "_torchvision_needs_shim", lambda: False)
    monkeypatch.setitem(sys.modules, "pyiqa", fake_pyiqa(lambda name, **kw: NoReference()))
    m = metrics.perceptual_metric("piqe")
    assert (m.full_reference, m.lower_better) == (False, True)
    img = data.astronaut()[:32, :48]
    assert m(img) == pytest.approx(img.mean() / 255, abs=1e-6)
    assert seen["shape"] == (1, 3, 32, 48) and 0 <= seen["range"][0] <= seen["range"][1] <= 1


def test_torchvision_shim_detection(monkeypatch, tmp_path):
    import torch

    if torch.version.cuda is not None:
        pytest.skip("the shim is only for CPU torch")
    monkeypatch.delenv("UIR_TORCHVISION_SHIM", raising=False)
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    pkg = tmp_path / "torchvision"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    lib = pkg / "_C.so"
    lib.write_bytes(b"\x7fELF...libtorch_cuda.so\x00libc10_cuda.so\x00")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert metrics._torchvision_needs_shim()  # a CUDA build beside CPU torch
    lib.write_bytes(b"\x7fELF...libtorch_cpu.so\x00")
    assert not metrics._torchvision_needs_shim()
    monkeypatch.setenv("UIR_TORCHVISION_SHIM", "1")
    assert metrics._torchvision_needs_shim()
