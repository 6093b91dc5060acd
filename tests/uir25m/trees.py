"""Miniature trees of the public datasets, with their real folder and file names (from
../shared/reference/datasets.md), and the pairs each catalogued part must find in them."""
from __future__ import annotations

import importlib
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RB_J = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"
RB_R = "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref"
SNOW = "media/jdway/GameSSD/overlapping"
CDD = ["low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow", "low_haze_rain", "low_haze_snow"]
SIDD = "Data/0001_001_S6_00100_00060_3200_L"

# source -> (files, {part: [(lq, gt), ...]}[, {text file: content}]); clean parts list ("", gt),
# unpaired (no-reference) parts (f, f). More entries live in trees_*.py (merged below).
TREES: dict[str, tuple] = {
    "gopro": (
        ["train/GOPR0372_07_00/blur/000047.png", "train/GOPR0372_07_00/blur_gamma/000047.png",
         "train/GOPR0372_07_00/sharp/000047.png", "train/GOPR0884_11_00/blur/000001.png",
         "train/GOPR0884_11_00/sharp/000001.png", "test/GOPR0384_11_00/blur/000001.png",
         "test/GOPR0384_11_00/blur_gamma/000001.png", "test/GOPR0384_11_00/sharp/000001.png"],
        {"train": [("train/GOPR0372_07_00/blur/000047.png", "train/GOPR0372_07_00/sharp/000047.png"),
                   ("train/GOPR0884_11_00/blur/000001.png", "train/GOPR0884_11_00/sharp/000001.png")],
         "test": [("test/GOPR0384_11_00/blur/000001.png", "test/GOPR0384_11_00/sharp/000001.png")],
         "train_gamma": [("train/GOPR0372_07_00/blur_gamma/000047.png", "train/GOPR0372_07_00/sharp/000047.png")],
         "test_gamma": [("test/GOPR0384_11_00/blur_gamma/000001.png", "test/GOPR0384_11_00/sharp/000001.png")]},
    ),
    "reside_ots": (
        ["hazy/part1/0001_0.8_0.2.jpg", "hazy/part1/0001_1_0.04.jpg", "hazy/part4/0002_0.85_0.16.jpg",
         "clear/0001.jpg", "clear/0002.jpg"],
        {"beta": [("hazy/part1/0001_0.8_0.2.jpg", "clear/0001.jpg"), ("hazy/part1/0001_1_0.04.jpg", "clear/0001.jpg"),
                  ("hazy/part4/0002_0.85_0.16.jpg", "clear/0002.jpg")]},
    ),
    "reside_sots": (
        ["outdoor/hazy/0001_0.8_0.2.jpg", "outdoor/hazy/0002_1_0.16.jpg", "outdoor/gt/0001.png", "outdoor/gt/0002.png",
         "indoor/hazy/1400_1.png", "indoor/hazy/1400_10.png", "indoor/clear/1400.png"],
        {"outdoor": [("outdoor/hazy/0001_0.8_0.2.jpg", "outdoor/gt/0001.png"), ("outdoor/hazy/0002_1_0.16.jpg", "outdoor/gt/0002.png")],
         "indoor": [("indoor/hazy/1400_1.png", "indoor/clear/1400.png"), ("indoor/hazy/1400_10.png", "indoor/clear/1400.png")]},
    ),
    "lol": (
        ["our485/low/2.png", "our485/high/2.png", "our485/low/5.png", "our485/high/5.png", "eval15/low/1.png", "eval15/high/1.png"],
        {"our485": [("our485/low/2.png", "our485/high/2.png"), ("our485/low/5.png", "our485/high/5.png")],
         "eval15": [("eval15/low/1.png", "eval15/high/1.png")]},
    ),
    "lolv2": (
        ["Real_captured/Train/Low/low00001.png", "Real_captured/Train/Normal/normal00001.png",
         "Real_captured/Test/Low/low00690.png", "Real_captured/Test/Normal/normal00690.png",
         "Synthetic/Train/Low/r000da54ft.png", "Synthetic/Train/Normal/r000da54ft.png",
         "Synthetic/Test/Low/r00816405t.png", "Synthetic/Test/Normal/r00816405t.png"],
        {"real_train": [("Real_captured/Train/Low/low00001.png", "Real_captured/Train/Normal/normal00001.png")],
         "real_test": [("Real_captured/Test/Low/low00690.png", "Real_captured/Test/Normal/normal00690.png")],
         "synthetic_train": [("Synthetic/Train/Low/r000da54ft.png", "Synthetic/Train/Normal/r000da54ft.png")],
         "synthetic_test": [("Synthetic/Test/Low/r00816405t.png", "Synthetic/Test/Normal/r00816405t.png")]},
    ),
    "sidd": (
        [f"{SIDD}/0001_GT_SRGB_010.PNG", f"{SIDD}/0001_NOISY_SRGB_010.PNG", f"{SIDD}/0001_GT_SRGB_011.PNG",
         f"{SIDD}/0001_NOISY_SRGB_011.PNG"],
        {"medium": [(f"{SIDD}/0001_NOISY_SRGB_010.PNG", f"{SIDD}/0001_GT_SRGB_010.PNG"),
                    (f"{SIDD}/0001_NOISY_SRGB_011.PNG", f"{SIDD}/0001_GT_SRGB_011.PNG")]},
    ),
    "rain13k": (
        ["train/Rain13K/input/1.jpg", "train/Rain13K/target/1.jpg", "train/Rain13K/input/10.jpg", "train/Rain13K/target/10.jpg"]
        + [f"test/{t}/{d}/1.png" for t in ("Rain100L", "Rain100H", "Test100", "Test1200", "Test2800") for d in ("input", "target")],
        {"train": [("train/Rain13K/input/1.jpg", "train/Rain13K/target/1.jpg"), ("train/Rain13K/input/10.jpg", "train/Rain13K/target/10.jpg")],
         **{f"test_{t.lower()}": [(f"test/{t}/input/1.png", f"test/{t}/target/1.png")]
            for t in ("Rain100L", "Rain100H", "Test100", "Test1200", "Test2800")}},
    ),
    "rain100l": (
        ["rainy/rain-1.png", "rainy/rain-2.png", "gt/norain-1.png", "gt/norain-2.png"],
        {"train": [("rainy/rain-1.png", "gt/norain-1.png"), ("rainy/rain-2.png", "gt/norain-2.png")]},
    ),
    "rain200l": (
        ["train/rain/X2/norain-1x2.png", "train/norain/norain-1.png", "test/rain/X2/norain-7x2.png", "test/norain/norain-7.png"],
        {"train": [("train/rain/X2/norain-1x2.png", "train/norain/norain-1.png")],
         "test": [("test/rain/X2/norain-7x2.png", "test/norain/norain-7.png")]},
    ),
    "rain200h": (
        ["train/rain/norain-3x2.png", "train/norain/norain-3.png", "test/rain/X2/norain-7x2.png", "test/norain/norain-7.png"],
        {"train": [("train/rain/norain-3x2.png", "train/norain/norain-3.png")],
         "test": [("test/rain/X2/norain-7x2.png", "test/norain/norain-7.png")]},
    ),
    "raindrop": (
        ["train/data/0_rain.png", "train/gt/0_clean.png", "test_a/data/1_rain.png", "test_a/gt/1_clean.png",
         "test_b/data/2_rain.jpg", "test_b/gt/2_clean.jpg"],
        {"train": [("train/data/0_rain.png", "train/gt/0_clean.png")],
         "test_a": [("test_a/data/1_rain.png", "test_a/gt/1_clean.png")],
         "test_b": [("test_b/data/2_rain.jpg", "test_b/gt/2_clean.jpg")]},
    ),
    "cdd11": (
        [f"{s}/{d}/000001.png" for s in ("train", "test") for d in ["clear"] + CDD],
        {**{f"{s}_mixed": [(f"{s}/{d}/000001.png", f"{s}/clear/000001.png") for d in CDD if "_" in d] for s in ("train", "test")},
         **{f"{s}_{d}": [(f"{s}/{d}/000001.png", f"{s}/clear/000001.png")] for s in ("train", "test") for d in CDD if "_" not in d}},
    ),
    "lolblur": (
        [f"{s}/{d}/{v}/0000.png" for s, v in (("train", "0000"), ("test", "0170"))
         for d in ("low_blur", "low_blur_noise", "low_sharp", "high_sharp_scaled", "high_sharp_original")],
        {"train": [("train/low_blur_noise/0000/0000.png", "train/high_sharp_scaled/0000/0000.png")],
         "train_low_blur": [("train/low_blur/0000/0000.png", "train/high_sharp_scaled/0000/0000.png")],
         "test": [("test/low_blur_noise/0170/0000.png", "test/high_sharp_scaled/0170/0000.png")],
         "test_low_blur": [("test/low_blur/0170/0000.png", "test/high_sharp_scaled/0170/0000.png")]},
    ),
    "realblur": (
        [f"{r}/scene{n}/{k}/{k}_1.png" for r in (RB_J, RB_R) for n in ("001", "230") for k in ("gt", "blur")]
        ,
        {f"{v.lower()}_{split}": [(f"{r}/scene{n}/blur/blur_1.png", f"{r}/scene{n}/gt/gt_1.png")]
         for v, r in (("J", RB_J), ("R", RB_R)) for split, n in (("train", "001"), ("test", "230"))},
        {f"RealBlur_{v}_{split}_list.txt": f"{r}/scene{n}/gt/gt_1.png {r}/scene{n}/blur/blur_1.png\n"
         for v, r in (("J", RB_J), ("R", RB_R)) for split, n in (("train", "001"), ("test", "230"))},
    ),
    "dpdd": (
        [f"{s}_{v}/{d}/1P0A1031.png" for s in ("train", "val", "test") for v in ("c", "l", "r") for d in ("source", "target")],
        {"train": [("train_c/source/1P0A1031.png", "train_c/target/1P0A1031.png")],
         "val": [("val_c/source/1P0A1031.png", "val_c/target/1P0A1031.png")],
         "test": [("test_c/source/1P0A1031.png", "test_c/target/1P0A1031.png")]},
    ),
    "bsd400": (["2018.jpg", "100007.jpg"], {"all": [("", "100007.jpg"), ("", "2018.jpg")]}),
    "wed": (["00001.bmp", "04744.bmp"], {"all": [("", "00001.bmp"), ("", "04744.bmp")]}),
    "cbsd68": (
        ["original_png/0000.png", "original_png/0001.png"] + [f"noisy{s}/000{i}.png" for s in (5, 10, 15, 25, 35, 50) for i in (0, 1)],
        {"original": [("", "original_png/0000.png"), ("", "original_png/0001.png")],
         **{f"noisy{s}": [(f"noisy{s}/000{i}.png", f"original_png/000{i}.png") for i in (0, 1)] for s in (5, 10, 15, 25, 35, 50)}},
    ),
    "kodak24": (["kodim01.png", "kodim24.png"], {"all": [("", "kodim01.png"), ("", "kodim24.png")]}),
    "urban100": (
        ["img_001.png", "image_SRF_2/img_002_SRF_2_HR.png", "image_SRF_2/img_002_SRF_2_LR.png"],
        {"all": [("", "image_SRF_2/img_002_SRF_2_HR.png"), ("", "img_001.png")]},
    ),
    "div2k": (["DIV2K_train_HR/0001.png", "DIV2K_valid_HR/0801.png"],
              {"train": [("", "DIV2K_train_HR/0001.png")], "valid": [("", "DIV2K_valid_HR/0801.png")]}),
    "flickr2k": (["Flickr2K_HR/000001.png", "Flickr2K_HR/002650.png"],
                 {"all": [("", "Flickr2K_HR/000001.png"), ("", "Flickr2K_HR/002650.png")]}),
    "snow100k": (
        [f"{SNOW}/train/{d}/beautiful_smile_00001.jpg" for d in ("synthetic", "gt", "mask")]
        + [f"{SNOW}/test/Snow100K-{z}/{d}/city_read_0001{i}.jpg" for z in "SML" for d in ("synthetic", "gt") for i in (0, 1)],
        {"train": [(f"{SNOW}/train/synthetic/beautiful_smile_00001.jpg", f"{SNOW}/train/gt/beautiful_smile_00001.jpg")],
         **{f"test_{z.lower()}": [(f"{SNOW}/test/Snow100K-{z}/synthetic/city_read_0001{i}.jpg",
                                   f"{SNOW}/test/Snow100K-{z}/gt/city_read_0001{i}.jpg") for i in (0, 1)] for z in "SML"}},
    ),
    "hide": (
        ["train/1fromGOPR0950.png", "GT/1fromGOPR0950.png", "test/test-close-ups/10fromGOPR1087.png", "GT/10fromGOPR1087.png",
         "test/test-long-shot/6fromGOPR0979.png", "GT/6fromGOPR0979.png"],
        {"train": [("train/1fromGOPR0950.png", "GT/1fromGOPR0950.png")],
         "test_close": [("test/test-close-ups/10fromGOPR1087.png", "GT/10fromGOPR1087.png")],
         "test_long": [("test/test-long-shot/6fromGOPR0979.png", "GT/6fromGOPR0979.png")]},
    ),
}

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}


def image(path: Path, size: tuple[int, int] = (12, 10), seed: int = 0, mode: str = "RGB") -> None:
    """Write a small image whose format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).convert(mode).save(path, FORMATS[path.suffix.lower()])


def make_tree(root: Path, source: str, at: str | None = None) -> Path:
    """Write the miniature tree of `source` under root/<its first dir> (or root/<at>, "" = root
    itself); returns that folder."""
    from uir25m import sources

    folder = root / (sources.load(source).dirs[0] if at is None else at)
    entry = TREES[source]
    for rel in entry[0]:
        image(folder / rel, seed=zlib.crc32(f"{source}/{rel}".encode()))  # distinct pixels: no accidental duplicates
    for rel, text in (entry[2] if len(entry) > 2 else {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


for _module in sorted(Path(__file__).parent.glob("trees_*.py")):
    TREES.update(importlib.import_module(_module.stem).TREES)
