"""Miniature trees for the group-c sources (LSRW, the moire sets, and the no-reference test sets),
with the folder and file names the public loaders and READMEs show (see each manifest's evidence).
Files that a part must NOT take (raw .npz, masks, annotations, other views) are included as decoys."""
from __future__ import annotations

TD = "Training data"
RD_TR, RD_TE = "trainset", "testset"

# source -> (files, {part: [(lq, gt), ...]}[, {text file: content}])
TREES: dict[str, tuple] = {
    "lsrw": (
        [f"{TD}/{cam}/{d}/{n}.jpg" for cam, n in (("Huawei", 2), ("Nikon", 1000)) for d in ("low", "high")]
        + [f"Eval/{cam}/{d}/{n}.jpg" for cam, n in (("Huawei", 46), ("Nikon", 490)) for d in ("low", "high")],
        {"train_huawei": [(f"{TD}/Huawei/low/2.jpg", f"{TD}/Huawei/high/2.jpg")],
         "train_nikon": [(f"{TD}/Nikon/low/1000.jpg", f"{TD}/Nikon/high/1000.jpg")],
         "test_huawei": [("Eval/Huawei/low/46.jpg", "Eval/Huawei/high/46.jpg")],
         "test_nikon": [("Eval/Nikon/low/490.jpg", "Eval/Nikon/high/490.jpg")]},
    ),
    "rdnet": (
        [f"{RD_TR}/moire_RGB/{i}_m.png" for i in (100, 10000)] + [f"{RD_TR}/gt_RGB/{i}_gt.png" for i in (100, 10000)]
        + [f"{RD_TE}/moire_RGB/1_m.png", f"{RD_TE}/gt_RGB/1_gt.png"],
        {"train": [(f"{RD_TR}/moire_RGB/100_m.png", f"{RD_TR}/gt_RGB/100_gt.png"),
                   (f"{RD_TR}/moire_RGB/10000_m.png", f"{RD_TR}/gt_RGB/10000_gt.png")],
         "test": [(f"{RD_TE}/moire_RGB/1_m.png", f"{RD_TE}/gt_RGB/1_gt.png")]},
        {f"{RD_TR}/moire_RAW_npz/100_m.npz": "raw\n", f"{RD_TR}/gt_RAW_npz/100_gt.npz": "raw\n",
         f"{RD_TE}/moire_RAW_npz/1_m.npz": "raw\n"},
    ),
    "uhdm": (
        [f"train/pair_{p}/0000_{k}.jpg" for p in ("00", "01") for k in ("gt", "moire")]
        + [f"test/0000_{k}.jpg" for k in ("gt", "moire")]
        + [f"test_origin/0000_{k}.jpg" for k in ("gt", "moire")],  # a separate archive: not a part
        {"train": [("train/pair_00/0000_moire.jpg", "train/pair_00/0000_gt.jpg"),
                   ("train/pair_01/0000_moire.jpg", "train/pair_01/0000_gt.jpg")],
         "test": [("test/0000_moire.jpg", "test/0000_gt.jpg")]},
    ),
    "tip2018": (
        [f"{s}/source/0001_source.png" for s in ("trainData", "testData")]
        + [f"{s}/target/0001_target.png" for s in ("trainData", "testData")],
        {"train": [("trainData/source/0001_source.png", "trainData/target/0001_target.png")],
         "test": [("testData/source/0001_source.png", "testData/target/0001_target.png")]},
    ),
    "rtts": (
        ["JPEGImages/AM_Bing_211.png"],
        {"test": [("JPEGImages/AM_Bing_211.png", "JPEGImages/AM_Bing_211.png")]},
        {"Annotations/AM_Bing_211.xml": "<annotation/>\n", "ImageSets/Main/test.txt": "AM_Bing_211\n"},
    ),
    "dicm": (["01.jpg", "69.jpg"], {"test": [("01.jpg", "01.jpg"), ("69.jpg", "69.jpg")]}),
    "lime": (["1.bmp", "10.bmp"], {"test": [("1.bmp", "1.bmp"), ("10.bmp", "10.bmp")]}),
    "mef": (["A.png"], {"test": [("A.png", "A.png")]}),
    "npe": (["birds.jpg"], {"test": [("birds.jpg", "birds.jpg")]}),
    "vv": (["P1000205.jpg"], {"test": [("P1000205.jpg", "P1000205.jpg")]}),
    "cuhk": (
        ["image/out_of_focus0015.jpg", "image/out_of_focus0027.JPG", "image/motion0027.jpg",
         "gt/out_of_focus0015.png", "gt/motion0027.png"],
        {"defocus": [("image/out_of_focus0015.jpg", "image/out_of_focus0015.jpg"),
                     ("image/out_of_focus0027.JPG", "image/out_of_focus0027.JPG")],
         "motion": [("image/motion0027.jpg", "image/motion0027.jpg")]},
    ),
    "pixeldp": (
        ["test_c/source/pixel_00.png", "test_l/source/pixel_00.png", "test_r/source/pixel_00.png"],
        {"test": [("test_c/source/pixel_00.png", "test_c/source/pixel_00.png")]},
    ),
}
