"""Miniature trees for group a's sources (lsdir, bsd500, ffhq, mcmaster, reds, rsblur, realdof, and the
unverified lfdof and nkusr8k), with the folder and file names the evidence in each manifest shows.
Merged into trees.TREES."""
from __future__ import annotations

BSDS = "BSDS500/data/images"  # under the root BSR/ of BSR_bsds500.tgz
RS = "RSBlur"  # RSBlur.zip extracts to RSBlur/<scene>/<id>/...
RS_TRAIN, RS_VAL, RS_TEST = f"{RS}/0019/000722", f"{RS}/0016/001317", f"{RS}/0001/000022"


def _rs(gt_dir: str, blur: str) -> str:
    return f"{gt_dir}/gt/gt_sharp.png {gt_dir}/{blur}\n"


TREES: dict[str, tuple] = {
    "lsdir": (
        ["HR/train/0001000/0000001.png", "HR/train/0001000/0000002.png", "HR/train/0002000/0001001.png",
         "val1/HR/val/0000001.png", "val1/X4/val/0000001x4.png"],
        {"train": [("", "HR/train/0001000/0000001.png"), ("", "HR/train/0001000/0000002.png"),
                   ("", "HR/train/0002000/0001001.png")],
         "val": [("", "val1/HR/val/0000001.png")]},
    ),
    "bsd500": (
        [f"{BSDS}/train/2092.jpg", f"{BSDS}/train/100075.jpg", f"{BSDS}/val/3096.jpg", f"{BSDS}/test/100007.jpg"],
        {"train": [("", f"{BSDS}/train/100075.jpg"), ("", f"{BSDS}/train/2092.jpg")],
         "val": [("", f"{BSDS}/val/3096.jpg")],
         "test": [("", f"{BSDS}/test/100007.jpg")]},
        {f"{BSDS}/train/Thumbs.db": "not an image\n"},
    ),
    "ffhq": (
        ["images1024x1024/00000/00000.png", "images1024x1024/00000/00999.png", "images1024x1024/01000/01000.png",
         "thumbnails128x128/00000/00000.png"],
        {"first1k": [("", "images1024x1024/00000/00000.png"), ("", "images1024x1024/00000/00999.png")]},
    ),
    "mcmaster": (
        ["1.tif", "10.tif", "18.tif"],
        {"all": [("", "1.tif"), ("", "10.tif"), ("", "18.tif")]},
    ),
    "reds": (
        [f"{s}/{s}_{d}/{c}/{f}.png" for s, c in (("train", "000"), ("val", "029"))
         for d in ("blur", "blur_comp", "sharp") for f in ("00000000", "00000099")]
        + [f"{s}/{s}_blur_jpeg/{c}/{f}.jpg" for s, c in (("train", "000"), ("val", "029")) for f in ("00000000", "00000099")],
        {**{f"{s}_{d}": [(f"{s}/{s}_{d}/{c}/{f}.{ext}", f"{s}/{s}_sharp/{c}/{f}.png") for f in ("00000000", "00000099")]
            for s, c in (("train", "000"), ("val", "029"))
            for d, ext in (("blur", "png"), ("blur_comp", "png"), ("blur_jpeg", "jpg"))}},
    ),
    "rsblur": (
        [f"{d}/{k}" for d in (RS_TRAIN, RS_VAL, RS_TEST) for k in ("gt/gt_sharp.png", "real_blur/real_blur.png")]
        + [f"{RS_TRAIN}/oracle_avg65_img/avg_blur.png", f"{RS_TRAIN}/avg65_mask_100/avg_blur.png"],
        {"real_train": [(f"{RS_TRAIN}/real_blur/real_blur.png", f"{RS_TRAIN}/gt/gt_sharp.png")],
         "real_val": [(f"{RS_VAL}/real_blur/real_blur.png", f"{RS_VAL}/gt/gt_sharp.png")],
         "real_test": [(f"{RS_TEST}/real_blur/real_blur.png", f"{RS_TEST}/gt/gt_sharp.png")],
         "syn_train": [(f"{RS_TRAIN}/oracle_avg65_img/avg_blur.png", f"{RS_TRAIN}/gt/gt_sharp.png")]},
        {"RSBlurList/RSBlur_real_train.txt": _rs(RS_TRAIN, "real_blur/real_blur.png"),
         "RSBlurList/RSBlur_real_val.txt": _rs(RS_VAL, "real_blur/real_blur.png"),
         "RSBlurList/RSBlur_real_test.txt": _rs(RS_TEST, "real_blur/real_blur.png"),
         "RSBlurList/RSBlur_syn_train.txt": _rs(RS_TRAIN, "oracle_avg65_img/avg_blur.png")},
    ),
    # stems are placeholders: the evidence shows the folders and equal names, not the stems
    "realdof": (
        ["source/0001.png", "target/0001.png", "source/0002.png", "target/0002.png"],
        {"test": [("source/0001.png", "target/0001.png"), ("source/0002.png", "target/0002.png")]},
    ),
    # unverified layouts (layout_verified: false): these trees only exercise the manifests' rules
    "lfdof": (
        ["train_data/input/IMG_0001.png", "train_data/ground_truth/IMG_0001.png",
         "train_data/input/IMG_0002/3.png", "train_data/input/IMG_0002/7.png", "train_data/ground_truth/IMG_0002.png",
         "test_data/input/IMG_2162.png", "test_data/ground_truth/IMG_2162.png"],
        {"train": [("train_data/input/IMG_0001.png", "train_data/ground_truth/IMG_0001.png"),
                   ("train_data/input/IMG_0002/3.png", "train_data/ground_truth/IMG_0002.png"),
                   ("train_data/input/IMG_0002/7.png", "train_data/ground_truth/IMG_0002.png")],
         "test": [("test_data/input/IMG_2162.png", "test_data/ground_truth/IMG_2162.png")]},
    ),
    "nkusr8k": (
        ["HR/0001.png", "HR/0002.jpg", "LR/0001.png", "PAIRS/lr/0001.png"],
        {"all": [("", "HR/0001.png"), ("", "HR/0002.jpg")]},
    ),
}
