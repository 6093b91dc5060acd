"""Does our MaskDCPT help? A CPU-scale experiment on five degradation types (haze h, rain streak
rs, Gaussian noise gn, motion blur mb, low-light ll), with whole held-out source images.

    python tools/experiment_fidelity.py --work runs/fidelity [--pretrain-steps 2000] [--finetune-steps 1500]
                                        [--width 16] [--seed 0] [--quick] [--json]

1. Clean images: scikit-image's colour samples and tinted grey textures (whole images assigned to
   train or test), plus procedural textures (fractal noise, shapes, stripes; disjoint seeds for
   train and test). Written as a DIV2K-style folder and built with `uir-build build` and a
   five-type synthetic recipe, so test pairs come from source images no training pair saw.
2. A small NAFNet (`nafnet_tiny` with `width`): MaskDCPT pretraining at mask ratio 0.5, and at
   ratio 0 (DCPT-style), for the same number of steps.
3. (a) KNN probe (features before the head, k 5, 2:1 split, 5 seeds) on the held-out pairs: random
   init vs each pretrained network. (b) Fine-tuning at equal steps from each export and from
   scratch; mean PSNR over types on the held-out pairs (and scratch for the pretraining's steps
   added, to compare at equal total steps). (c) ratio 0 vs 0.5 in both.
Prints a Markdown report (and JSON with --json); every run's folder stays under --work.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TYPES = ("h", "rs", "gn", "mb", "ll")
# whole scikit-image samples: (file, partition); grey textures are tinted to colour
NATURAL = {"astronaut.png": "train", "chelsea.png": "train", "coffee.png": "train", "ihc.png": "train",
           "hubble_deep_field.jpg": "train", "retina.jpg": "train", "color.png": "train",
           "motorcycle_left.png": "test", "rocket.jpg": "test"}
GREY = {"brick.png": "train", "grass.png": "train", "camera.png": "train", "coins.png": "train",
        "cell.png": "train", "gravel.png": "test", "moon.png": "test"}


# --- clean images ---------------------------------------------------------------------------------

def _fractal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sum of upsampled random fields over octaves, per channel, in [0, 1]."""
    out = np.zeros((size, size, 3), np.float32)
    amp = 1.0
    for octave in range(2, 7):
        n = 2**octave
        field = rng.random((n, n, 3)).astype(np.float32)
        out += amp * cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC)
        amp *= 0.55
    out -= out.min()
    return out / max(out.max(), 1e-6)


def texture(seed: int, size: int = 256) -> np.ndarray:
    """A procedural RGB uint8 image: a fractal-noise or gradient background with random shapes and
    stripes (edges, flat regions and fine detail for every degradation to act on)."""
    rng = np.random.default_rng(seed)
    kind = seed % 3
    if kind == 0:
        img = _fractal(rng, size)
    else:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        c0, c1 = rng.random(3), rng.random(3)
        t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) % 1.0
        img = (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.float32)
    img = (img * 255).astype(np.uint8)
    for _ in range(int(rng.integers(6, 18))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 4)
        p = tuple(int(v) for v in rng.integers(0, size, 2))
        if shape == 0:
            cv2.circle(img, p, int(rng.integers(5, size // 4)), colour, -1 if rng.random() < 0.7 else 2, cv2.LINE_AA)
        elif shape == 1:
            q = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.rectangle(img, p, q, colour, -1 if rng.random() < 0.6 else 3)
        elif shape == 2:
            q = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, p, q, colour, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            period = int(rng.integers(4, 16))
            angle = rng.uniform(0, np.pi)
            yy, xx = np.mgrid[0:size, 0:size]
            stripes = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0)
            region = np.zeros((size, size), bool)
            r = int(rng.integers(size // 8, size // 3))
            region[max(0, p[1] - r):p[1] + r, max(0, p[0] - r):p[0] + r] = True
            img[stripes & region] = colour
    return img


def _tiles(img: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = img.shape[:2]
    if min(h, w) < size:
        return [cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)]
    return [img[y:y + size, x:x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def make_clean(raw: Path, *, train_textures: int, test_textures: int, size: int, seed: int) -> dict[str, int]:
    """Write the clean images as RAW/DIV2K/DIV2K_{train,valid}_HR/*.png; returns counts. Natural
    images are cut into size x size tiles (a source image's tiles stay in one partition)."""
    import skimage

    root = Path(skimage.__file__).resolve().parent / "data"
    dirs = {"train": raw / "DIV2K" / "DIV2K_train_HR", "test": raw / "DIV2K" / "DIV2K_valid_HR"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    rng = np.random.default_rng(seed)
    for name, part in NATURAL.items():
        img = cv2.cvtColor(cv2.imread(str(root / name), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        images[part] += _tiles(img, size)
    for name, part in GREY.items():
        grey = cv2.imread(str(root / name), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
        tint = rng.uniform(0.4, 1.0, 3)
        images[part] += _tiles((np.clip(grey[..., None] * tint + rng.uniform(0, 0.2, 3), 0, 1) * 255).astype(np.uint8), size)
    images["train"] += [texture(seed * 100_000 + i, size) for i in range(train_textures)]
    images["test"] += [texture(seed * 100_000 + 50_000 + i, size) for i in range(test_textures)]
    for part, imgs in images.items():
        for i, img in enumerate(imgs):
            cv2.imwrite(str(dirs[part] / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return {part: len(imgs) for part, imgs in images.items()}


def write_recipe(path: Path, variants: int) -> None:
    lines = ["name: fidelity", "description: five types synthesised from the experiment's clean images",
             "shard_size: 500", "png_level: 1", "tile: 0", "sources:",
             f"  - {{source: div2k, parts: [train, valid], synthesise: [{', '.join(TYPES)}]}}", "synthetic:"]
    lines += [f"  {code}: {{variants: {variants}}}" for code in TYPES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(work: Path, args: argparse.Namespace) -> tuple[Path, dict]:
    raw, data = work / "raw", work / "data"
    if (data / "manifests" / "samples.parquet").is_file():
        return data, json.loads((work / "clean.json").read_text())
    counts = make_clean(raw, train_textures=args.train_textures, test_textures=args.test_textures,
                        size=args.size, seed=args.seed)
    (work / "clean.json").write_text(json.dumps(counts))
    recipe = work / "recipe.yaml"
    write_recipe(recipe, args.variants)
    cmd = [sys.executable, "-m", "uir25m.cli", "build", "--recipe", str(recipe), "--root", str(raw), "--out", str(data),
           "--workers", str(args.workers)]
    subprocess.run(cmd, check=True)
    return data, counts
