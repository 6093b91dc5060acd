"""Image-quality metrics with the paper's protocol (MaskDCPT's BasicSR test settings, see
`reference/metrics.md` §1–2): PSNR and SSIM on RGB, no border crop, both images clamped to [0, 1];
`image_range` 1.0 compares floats (MaskDCPT's ymls), 255 rounds both to 8 bits first.

PSNR and SSIM are scikit-image's, configured like BasicSR's `calculate_psnr` / `_ssim`:

- SSIM: 11 x 11 Gaussian window, sigma 1.5 (`gaussian_weights=True`: scikit-image truncates its
  filter at 3.5 sigma, radius int(3.5 * 1.5 + 0.5) = 5, so 11 taps, the same normalised weights as
  `cv2.getGaussianKernel(11, 1.5)`), population covariances (`use_sample_covariance=False`),
  K1 0.01 / K2 0.03 of the data range, computed per channel then averaged, float64.
- Valid region: scikit-image filters the whole image (reflect border) and averages the SSIM map
  over `crop(S, (win_size - 1) // 2)`, i.e. `S[5:-5, 5:-5]`; BasicSR filters with cv2's border and
  averages `[5:-5, 5:-5]`. The window of every kept pixel lies inside the image, so the border
  modes never enter and the two agree to rounding (tests/training/test_metrics.py checks it
  against an independent cv2 implementation). Images need at least 11 x 11 pixels.
- PSNR of identical images is `inf` (as BasicSR; pyiqa's 80 dB comes from its 1e-8 epsilon).

Perceptual metrics (LPIPS, PIQE, BRISQUE, ...) come from pyiqa, an optional extra
(`pip install 'uir25m[metrics]'`, licence PolyForm Noncommercial 1.0.0): `perceptual_metric`.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_RANGES = (1.0, 255.0)
SSIM_WINDOW = 11  # pixels; the valid region drops (SSIM_WINDOW - 1) // 2 at every border


def check_image_range(image_range: float) -> None:
    """Raise ValueError unless `image_range` is one of `IMAGE_RANGES` (1 or 255)."""
    if float(image_range) not in IMAGE_RANGES:
        raise ValueError(f"image_range must be 1 or 255, not {image_range}")


def prepare(img: np.ndarray, image_range: float = 1.0) -> np.ndarray:
    """H x W x 3 float64 on [0, image_range]: uint8 as it is (scaled for 1.0); float images are
    taken as [0, 1], clamped, and rounded to 8 bits when `image_range` is 255."""
    check_image_range(image_range)
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {img.shape}")
    if img.dtype == np.uint8:
        out = img.astype(np.float64)
        return out if image_range == 255 else out / 255.0
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"expected uint8 or float pixels, got {img.dtype}")
    out = np.clip(img.astype(np.float64), 0.0, 1.0)
    return np.round(out * 255.0) if image_range == 255 else out


def _pair(img: np.ndarray, ref: np.ndarray, image_range: float) -> tuple[np.ndarray, np.ndarray]:
    a, b = prepare(img, image_range), prepare(ref, image_range)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    return a, b


def psnr(img: np.ndarray, ref: np.ndarray, image_range: float = 1.0) -> float:
    """RGB PSNR in dB over the whole image (no border crop); `inf` when the prepared images are equal."""
    # imported here: skimage.metrics pulls in scipy.stats (~1 s), which a failing command need not pay
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _pair(img, ref, image_range)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(b, a, data_range=float(image_range)))


def ssim(img: np.ndarray, ref: np.ndarray, image_range: float = 1.0) -> float:
    """RGB SSIM as BasicSR computes it (see the module docstring); 1.0 for identical images."""
    from skimage.metrics import structural_similarity

    a, b = _pair(img, ref, image_range)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got "
                         f"{a.shape[1]} x {a.shape[0]}")
    return float(structural_similarity(a, b, data_range=float(image_range), channel_axis=2, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False, K1=0.01, K2=0.03))


# ---------------------------------------------------------------- perceptual metrics (pyiqa extra)

INSTALL_HINT = ("pip install 'uir25m[metrics]' (pyiqa; licence PolyForm Noncommercial 1.0.0, i.e. "
                "non-commercial use only)")


class MetricUnavailable(ValueError):
    """A perceptual metric that cannot run here: pyiqa missing or broken, or its weights not
    downloadable. A ValueError, so the command line reports it as an error (exit 2)."""


def pyiqa_cache_dir() -> Path:
    """Where pyiqa looks for (and downloads) its weight files: <torch hub dir>/pyiqa, by default
    ~/.cache/torch/hub/pyiqa (network backbones go to <torch hub dir>/checkpoints)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "pyiqa"


def _torchvision_needs_shim() -> bool:
    """Whether the installed torchvision's compiled ops cannot load beside this torch: its `_C`
    library links libtorch_cuda while torch is a CPU build (`reference/metrics.md` §4: pip pulls a
    CUDA torchvision beside CPU torch and `import torchvision` then fails on `torchvision::nms`).
    Decided from the files, without importing torchvision. `UIR_TORCHVISION_SHIM=1`/`0` forces it."""
    forced = os.environ.get("UIR_TORCHVISION_SHIM")
    if forced in ("0", "1"):
        return forced == "1"
    import sys

    import torch

    if "torchvision" in sys.modules or torch.version.cuda is not None:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for lib in Path(folder).glob("_C*.so"):
            try:
                if b"libtorch_cuda" in lib.read_bytes():
                    return True
            except OSError:
                continue
    return False


_SHIM_APPLIED = False


def _apply_torchvision_shim() -> None:
    """Define the two operators that torchvision's fake-kernel registrations need (`nms`, `qnms`)
    so the pure-Python parts of torchvision (transforms, model definitions) import beside CPU
    torch; `torchvision.ops.nms` itself then raises. Option 1 of `reference/metrics.md` §4: chosen
    because it keeps the CPU torch of the `train` extra (the CUDA route costs ~5 GB) and pyiqa's
    pure metrics and backbones need no torchvision C++ op."""
    global _SHIM_APPLIED
    if _SHIM_APPLIED:
        return
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    globals()["_TV_LIBRARY"] = lib  # a Library deregisters its ops when garbage-collected
    _SHIM_APPLIED = True


def import_pyiqa() -> Any:
    """The pyiqa module, with the torchvision shim applied first where needed; MetricUnavailable
    with the install command when the extra is absent or cannot be imported."""
    try:
        if _torchvision_needs_shim():
            _apply_torchvision_shim()
        return importlib.import_module("pyiqa")
    except ModuleNotFoundError as e:
        raise MetricUnavailable(f"perceptual metrics need pyiqa, which is not installed ({e}); {INSTALL_HINT}") from None
    except (ImportError, RuntimeError, OSError) as e:
        raise MetricUnavailable(f"pyiqa is installed but does not import ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:300]}); reinstall it with {INSTALL_HINT}") from None


@dataclass
class PerceptualMetric:
    """A pyiqa metric: `metric(img, ref)` on H x W x 3 images in [0, 1] (float) or uint8; `ref`
    is ignored by no-reference metrics (PIQE, BRISQUE, NIQE)."""

    name: str
    full_reference: bool
    lower_better: bool
    _fn: Callable[..., Any]
    device: str = "cpu"

    def __call__(self, img: np.ndarray, ref: np.ndarray | None = None) -> float:
        import torch

        def tensor(a: np.ndarray) -> torch.Tensor:
            a = prepare(a, 1.0)
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()[None].to(self.device)

        with torch.no_grad():
            if self.full_reference:
                if ref is None:
                    raise ValueError(f"{self.name} is a full-reference metric: give the ground truth")
                value = self._fn(tensor(img), tensor(ref))
            else:
                value = self._fn(tensor(img))
        return float(value.item() if hasattr(value, "item") else value)


def _attempted_download(exc: BaseException) -> tuple[str, str] | None:
    """(url, destination) of the torch.hub download that raised `exc`, read from its traceback."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "download_url_to_file" and "url" in frame.f_locals:
            found = (str(frame.f_locals["url"]), str(frame.f_locals.get("dst", "")))
        tb = tb.tb_next
    return found


def perceptual_metric(name: str, *, device: str = "cpu", **kwargs: Any) -> PerceptualMetric:
    """pyiqa's metric `name` (lpips, piqe, brisque, niqe, dists, ...; `pyiqa.list_models()`).
    Raises MetricUnavailable naming the fix when pyiqa is missing, the name unknown, or the
    weights cannot be downloaded (offline: place the file in `pyiqa_cache_dir()`)."""
    pyiqa = import_pyiqa()
    known = list(pyiqa.list_models())
    if name not in known:
        shown = sorted(known)
        listed = ", ".join(shown[:40]) + (f", ... ({len(shown)} in all: pyiqa.list_models())" if len(shown) > 40 else "")
        raise MetricUnavailable(f"pyiqa has no metric {name!r}; known: {listed}")
    try:
        fn = pyiqa.create_metric(name, device=device, as_loss=False, **kwargs)
    except OSError as e:  # URLError, HTTP errors, huggingface_hub's LocalEntryNotFoundError
        cache = pyiqa_cache_dir()
        attempt = _attempted_download(e)
        if attempt:
            where = (f"download {attempt[0]} on a machine with network access and place it at {attempt[1]} "
                     f"(a metric may need several files: run again to see the next)")
        else:
            where = (f"place its weight file in {cache} (torchvision backbones such as LPIPS's AlexNet in "
                     f"{cache.parent / 'checkpoints'}); pyiqa takes them from "
                     f"huggingface.co/chaofengc/IQA-PyTorch-Weights")
        raise MetricUnavailable(f"pyiqa could not fetch the weights of {name!r} ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:300]}); offline, {where}") from None
    mode = str(getattr(fn, "metric_mode", "FR")).upper()
    return PerceptualMetric(name, mode == "FR", bool(getattr(fn, "lower_better", False)), fn, str(device))
