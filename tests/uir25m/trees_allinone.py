"""Miniature trees of the all-in-one restoration layouts: PromptIR/AirNet's data/Train (source promptir),
AdaIR's data/Train (adair) and their test folders (allinone_test), with the folder and file names their
INSTALL.md files, loaders and sample files show (see each manifest's evidence). Decoys (.DS_Store,
Thumbs.db, READMEs, AirNet's flat denoise and demo images) must be left alone by every part.
Merged into trees.TREES."""
from __future__ import annotations

HZ, OR = "Train/Dehaze/synthetic", "Train/Dehaze/original"
RN, GT = "Train/Derain/rainy", "Train/Derain/gt"
DN, DB, EN = "Train/Denoise", "Train/Deblur", "Train/Enhance"

TREES: dict[str, tuple] = {
    "promptir": (
        [f"{HZ}/part1/0025_0.8_0.04.jpg", f"{HZ}/part1/0025_1_0.2.jpg", f"{HZ}/part4/8961_0.85_0.1.jpg",
         f"{OR}/0025.jpg", f"{OR}/8961.jpg",
         f"{RN}/rain-1.png", f"{RN}/rain-200.png", f"{GT}/norain-1.png", f"{GT}/norain-200.png",
         f"{DN}/00001.bmp", f"{DN}/04744.bmp", f"{DN}/2018.jpg", f"{DN}/100007.jpg"],
        {"dehaze": [(f"{HZ}/part1/0025_0.8_0.04.jpg", f"{OR}/0025.jpg"), (f"{HZ}/part1/0025_1_0.2.jpg", f"{OR}/0025.jpg"),
                    (f"{HZ}/part4/8961_0.85_0.1.jpg", f"{OR}/8961.jpg")],
         "derain": [(f"{RN}/rain-1.png", f"{GT}/norain-1.png"), (f"{RN}/rain-200.png", f"{GT}/norain-200.png")],
         "denoise": [("", f"{DN}/00001.bmp"), ("", f"{DN}/04744.bmp"), ("", f"{DN}/100007.jpg"), ("", f"{DN}/2018.jpg")]},
        {"Train/README.md": "put the datasets here\n", f"{DN}/.DS_Store": "finder\n", "Train/Derain/.DS_Store": "finder\n"},
    ),
    # PromptIR's test/ (dehaze, derain/Rain100L, denoise/{bsd68,urban100}) with what AdaIR's data/test/ adds
    # (denoise/kodak24, deblur/gopro, enhance/lol) and AirNet's derain/{input,target}, flat denoise/ and demo/
    "allinone_test": (
        ["dehaze/input/0001_0.8_0.2.jpg", "dehaze/input/0002_0.8_0.08.jpg", "dehaze/target/0001.png", "dehaze/target/0002.png",
         "derain/Rain100L/input/1.png", "derain/Rain100L/target/1.png",
         "derain/input/2.png", "derain/target/2.png",
         "denoise/bsd68/3096.jpg", "denoise/bsd68/12084.jpg", "denoise/urban100/img_001.png", "denoise/kodak24/kodim01.png",
         "deblur/gopro/input/GOPR0384_11_00_000001.png", "deblur/gopro/target/GOPR0384_11_00_000001.png",
         "enhance/lol/input/1.png", "enhance/lol/target/1.png", "enhance/lol/input/22.png", "enhance/lol/target/22.png",
         "denoise/00001.png", "demo/0051_0.8_0.2.png", "demo/31.png"],  # AirNet's flat denoise and demo: no part
        {"dehaze": [("dehaze/input/0001_0.8_0.2.jpg", "dehaze/target/0001.png"),
                    ("dehaze/input/0002_0.8_0.08.jpg", "dehaze/target/0002.png")],
         "derain": [("derain/Rain100L/input/1.png", "derain/Rain100L/target/1.png"), ("derain/input/2.png", "derain/target/2.png")],
         "bsd68": [("", "denoise/bsd68/12084.jpg"), ("", "denoise/bsd68/3096.jpg")],
         "urban100": [("", "denoise/urban100/img_001.png")],
         "kodak24": [("", "denoise/kodak24/kodim01.png")],
         "gopro": [("deblur/gopro/input/GOPR0384_11_00_000001.png", "deblur/gopro/target/GOPR0384_11_00_000001.png")],
         "lol": [(f"enhance/lol/input/{i}.png", f"enhance/lol/target/{i}.png") for i in (1, 22)]},
        {"README.md": "test sets\n", "dehaze/.DS_Store": "finder\n", "denoise/bsd68/.DS_Store": "finder\n",
         "denoise/bsd68/Thumbs.db": "thumbs\n"},
    ),
    "adair": (
        [f"{HZ}/part1/0025_0.8_0.1.jpg", f"{HZ}/part1/0025_0.8_0.2.jpg", f"{HZ}/part2/3068_0.8_0.1.jpg",
         f"{OR}/0025.png", f"{OR}/3068.jpg",  # INSTALL.md draws .png, the loader builds .jpg: both pair
         f"{RN}/rain-1.png", f"{GT}/norain-1.png",
         f"{DN}/00001.bmp", f"{DN}/5096.jpg", f"{DN}/6046.jpg",
         f"{DB}/blur/GOPR0372_07_00_000047.png", f"{DB}/sharp/GOPR0372_07_00_000047.png",
         f"{DB}/blur/GOPR0372_07_00_000048.png", f"{DB}/sharp/GOPR0372_07_00_000048.png",
         f"{EN}/low/2.png", f"{EN}/gt/2.png", f"{EN}/low/5.png", f"{EN}/gt/5.png"],
        {"dehaze": [(f"{HZ}/part1/0025_0.8_0.1.jpg", f"{OR}/0025.png"), (f"{HZ}/part1/0025_0.8_0.2.jpg", f"{OR}/0025.png"),
                    (f"{HZ}/part2/3068_0.8_0.1.jpg", f"{OR}/3068.jpg")],
         "derain": [(f"{RN}/rain-1.png", f"{GT}/norain-1.png")],
         "denoise": [("", f"{DN}/00001.bmp"), ("", f"{DN}/5096.jpg"), ("", f"{DN}/6046.jpg")],
         "deblur": [(f"{DB}/blur/GOPR0372_07_00_00004{i}.png", f"{DB}/sharp/GOPR0372_07_00_00004{i}.png") for i in (7, 8)],
         "enhance": [(f"{EN}/low/{i}.png", f"{EN}/gt/{i}.png") for i in (2, 5)]},
        {f"{DN}/.DS_Store": "finder\n", f"{DB}/blur/.DS_Store": "finder\n", f"{HZ}/part1/.DS_Store": "finder\n",
         "Train/Enhance/low/Thumbs.db": "thumbs\n"},
    ),
}
