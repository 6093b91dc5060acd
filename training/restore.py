"""Run a restoration network on whole images of any size: reflect-pad to the model's
`size_multiple` and crop back (the paper's inference), or, for large images, overlapping tiles
blended without seams; and restore a user's image files into a folder of PNGs."""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from uir25m import atomic


def size_multiple(model: torch.nn.Module) -> int:
    """The multiple that the model's input height and width must have (1 if it declares none)."""
    return max(1, int(getattr(model, "size_multiple", 1) or 1))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad a B x C x H x W tensor on the bottom and right to multiples of `multiple`
    (BasicSR's test-time padding). Pads larger than the image reflect again (torch's reflect
    needs pad < size); a 1-pixel side is replicated."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    while ph or pw:
        h, w = x.shape[-2:]
        sh, sw = min(ph, h - 1), min(pw, w - 1)
        if (ph and not sh) or (pw and not sw):  # a 1-pixel side cannot reflect: replicate it
            rh, rw = (0 if sh else ph), (0 if sw else pw)
            x = F.pad(x, (0, rw, 0, rh), mode="replicate")
            ph, pw = ph - rh, pw - rw
            continue
        x = F.pad(x, (0, sw, 0, sh), mode="reflect")
        ph, pw = ph - sh, pw - sw
    return x


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def forward_padded(model: torch.nn.Module, x: torch.Tensor, *, amp: bool = False) -> torch.Tensor:
    """model(x) for B x 3 x H x W in [0, 1] of any size: padded, run under no_grad (bf16 autocast
    on CUDA when `amp`), cropped back, float32, clamped to [0, 1]."""
    h, w = x.shape[-2:]
    with torch.no_grad(), _autocast(x.device, amp):
        out = model(pad_to_multiple(x, size_multiple(model)))
    return out[..., :h, :w].float().clamp_(0.0, 1.0)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spaced tile starts covering [0, length); neighbours overlap by at least `overlap`."""
    if length <= tile:
        return [0]
    n = 1 + math.ceil((length - tile) / (tile - overlap))
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _ramp(length: int, overlap: int, lead: bool, trail: bool) -> torch.Tensor:
    """1-D blending weights of a tile: at an edge shared with a neighbour, 0 over the first
    overlap // 4 pixels (their context is cut by the tile border), then a linear ramp up to 1 over
    the middle half of the overlap; 1 elsewhere and along the image border."""
    d = torch.arange(length, dtype=torch.float32)
    margin = overlap // 4
    span = max(overlap - 2 * margin, 1)

    def profile(dist: torch.Tensor) -> torch.Tensor:
        return ((dist - margin + 0.5) / span).clamp(0.0, 1.0) * (dist >= margin)

    w = torch.ones(length)
    if lead and overlap:
        w = w * profile(d)
    if trail and overlap:
        w = w * profile(length - 1 - d)
    return w


def restore_tensor(model: torch.nn.Module, x: torch.Tensor, *, tile: int | None = None, overlap: int = 32,
                   amp: bool = False) -> torch.Tensor:
    """Restore a 1 x 3 x H x W image in [0, 1] (on the model's device): whole when `tile` is None
    or the image fits in one tile, else tiles of `tile` pixels (rounded down to the model's
    size_multiple) overlapping by at least `overlap` (at most tile / 2), blended with `_ramp`
    weights. For a model whose receptive field reaches at most overlap // 4 pixels, tiling gives
    the untiled result (up to float rounding); models with global operations (NAFNet's channel
    attention pools the whole input) differ slightly, without seams."""
    h, w = x.shape[-2:]
    if tile is None:
        return forward_padded(model, x, amp=amp)
    if tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    mult = size_multiple(model)
    tile = max(mult, tile // mult * mult)
    if overlap < 0 or 2 * overlap > tile:
        raise ValueError(f"overlap must be between 0 and half the tile ({tile // 2} for tile {tile}), got {overlap}")
    if h <= tile and w <= tile:
        return forward_padded(model, x, amp=amp)
    out = torch.zeros(1, 3, h, w, device=x.device)
    weight = torch.zeros(1, 1, h, w, device=x.device)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    for y0 in ys:
        th = min(tile, h)
        wy = _ramp(th, overlap, y0 > 0, y0 + th < h).to(x.device)
        for x0 in xs:
            tw = min(tile, w)
            wx = _ramp(tw, overlap, x0 > 0, x0 + tw < w).to(x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            piece = forward_padded(model, x[..., y0:y0 + th, x0:x0 + tw], amp=amp)
            out[..., y0:y0 + th, x0:x0 + tw] += piece * wt
            weight[..., y0:y0 + th, x0:x0 + tw] += wt
    if not bool((weight > 0).all()):  # cannot happen with overlap <= tile / 2; guards the blending
        raise RuntimeError("tile blending left pixels without weight")
    return (out / weight).clamp_(0.0, 1.0)


def to_tensor(img: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 1 x 3 x H x W float32 in [0, 1]."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {img.dtype} {img.shape}")
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(device).float().div_(255.0)[None]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [0, 1] -> H x W x 3 uint8 RGB (clamped, rounded half to even)."""
    return x[0].detach().float().clamp(0.0, 1.0).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def restore_image(model: torch.nn.Module, img: np.ndarray, *, tile: int | None = None, overlap: int = 32,
                  device: torch.device | str = "cpu", amp: bool = False) -> np.ndarray:
    """Restore an H x W x 3 uint8 RGB image of any size; returns uint8 RGB of the same size."""
    return to_uint8(restore_tensor(model, to_tensor(img, device), tile=tile, overlap=overlap, amp=amp))


@dataclass
class RestoreSummary:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """H x W x 3 uint8 RGB pixels of an image file (PNG, JPEG or anything Pillow reads): EXIF
    orientation applied, alpha dropped, 16-bit grey scaled to 8 bits. Pillow's decompression-bomb
    guard stays at its default (an error above twice `Image.MAX_IMAGE_PIXELS`)."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.clip(np.rint(np.asarray(im, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: too large to decode safely ({e})") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image (Pillow does not recognise the file)") from None
    except (OSError, SyntaxError, ValueError) as e:  # missing, unreadable, truncated, corrupt
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ValueError(f"{path}: cannot read the image ({detail})") from None


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an H x W x 3 uint8 RGB image as PNG, atomically."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the PNG")
    atomic.write_bytes(path, buf.tobytes())


def _outputs(paths: Iterable[str | os.PathLike], out_dir: Path) -> Iterator[tuple[str, Path, str | None]]:
    """(input, output path, reason to refuse or None): same stem + .png; never an input file, and
    never the output of an earlier input."""
    paths = [str(p) for p in paths]
    inputs = {Path(p).resolve() for p in paths}
    taken: dict[Path, str] = {}
    for p in paths:
        out = out_dir / f"{Path(p).stem}.png"
        key = out.resolve()
        if key in inputs:
            yield p, out, f"the output {out} would overwrite an input image; choose another --out"
        elif key in taken:
            yield p, out, f"the output {out} is already the restoration of {taken[key]} (same file stem)"
        else:
            taken[key] = p
            yield p, out, None


def restore_files(model: torch.nn.Module, paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *,
                  tile: int | None = None, overlap: int = 32, device: torch.device | str = "cpu",
                  amp: bool = False, progress: bool = True) -> RestoreSummary:
    """Restore image files into `out_dir`/<stem>.png (atomic writes). A file that cannot be read,
    decoded, restored or written is recorded in `failed` with the reason, and the others go on."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{out_dir}: cannot create the output folder ({e.strerror or e})") from None
    summary = RestoreSummary()
    jobs = list(_outputs(paths, out_dir))
    for src, out, refused in tqdm(jobs, desc="restore", unit="img", disable=not progress):
        if refused:
            summary.failed.append((src, refused))
            continue
        try:
            rgb = restore_image(model, read_image(src), tile=tile, overlap=overlap, device=device, amp=amp)
            save_png(out, rgb)
        except (OSError, ValueError, MemoryError, RuntimeError) as e:  # this file fails, the others go on
            hint = " (try a smaller --tile)" if "memory" in str(e).lower() or isinstance(e, MemoryError) else ""
            reason = str(e) if str(e).startswith(src) else f"{src}: {type(e).__name__}: {e}"
            summary.failed.append((src, reason.splitlines()[0][:500] + hint))
            continue
        summary.written.append(out)
    return summary
