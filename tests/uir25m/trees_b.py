"""Miniature trees for catalogue group b (rain, raindrop and snow sources), with the folder and file names
the evidence in each manifest shows. Same shape as trees.TREES."""
from __future__ import annotations

RDS = "RainDS"  # the archive nests RainDS/RainDS/RainDS_{syn,real} (MaskDCPT's test paths)
RDS_KINDS = {"rs": ("rainstreak", "rain-"), "rd": ("raindrop", "rd-"), "rsd": ("rainstreak_raindrop", "rd-rain-")}
RDS_SYN = {"train": ["1", "pie-2"], "test": ["5"]}  # ids; a pie- id keeps its prefix on the GT side
RDS_REAL = {"train": ("train_set", ["2"]), "test": ("test_set", ["3", "17"])}


def _syn(split: str, ident: str, kind: str | None) -> str:
    pie, num = ("pie-", ident[4:]) if ident.startswith("pie-") else ("", ident)
    folder, prefix = RDS_KINDS[kind] if kind else ("gt", "norain-")
    return f"{RDS}/RainDS_syn/{split}/{folder}/{pie}{prefix}{num}.png"


def _real(split: str, ident: str, kind: str | None) -> str:
    folder = RDS_KINDS[kind][0] if kind else "gt"
    return f"{RDS}/RainDS_real/{RDS_REAL[split][0]}/{folder}/{ident}.png"


RR = {"l": "RealRain-1k-L", "h": "RealRain-1k-H"}
RR_IDS = {"train": "1", "val": "1021", "test": "1077"}
OR_TEST = "test_with_train_param_v5"
RDC = {"day": "DayRainDrop_Train", "night": "NightRainDrop_Train/NightRainDrop_Train"}  # night: unzipped twice

TREES: dict[str, tuple] = {
    "rainds": (
        [_syn(s, i, k) for s, ids in RDS_SYN.items() for i in ids for k in (None, "rs", "rd", "rsd")]
        + [_real(s, i, k) for s, (_, ids) in RDS_REAL.items() for i in ids for k in (None, "rs", "rd", "rsd")],
        {**{f"syn_{s}_{k}": [(_syn(s, i, k), _syn(s, i, None)) for i in ids] for s, ids in RDS_SYN.items() for k in RDS_KINDS},
         **{f"real_{s}_{k}": [(_real(s, i, k), _real(s, i, None)) for i in ids] for s, (_, ids) in RDS_REAL.items()
            for k in RDS_KINDS}},
    ),
    "realrain1k": (
        [f"{RR[d]}/{s}/{f}/{i}.png" for d in RR for s, i in RR_IDS.items() for f in ("input", "target")],
        {f"{d}_{s}": [(f"{RR[d]}/{s}/input/{i}.png", f"{RR[d]}/{s}/target/{i}.png")] for d in RR for s, i in RR_IDS.items()},
    ),
    "outdoorrain": (
        ["train/in/im_0001_s80_a04.png", "train/in/im_0001_s100_a06.png", "train/in/im_0002_s85_a05.png",
         "train/gt/im_0001.png", "train/gt/im_0002.png", "train/streak/im_0001_s80_a04.png",
         "train/trans/im_0001_s80_a04.png", "train/atm/im_0001_s80_a04.png",
         f"{OR_TEST}/in/im_0601_s80_a04.png", f"{OR_TEST}/gt/im_0601.png"],
        {"train": [("train/in/im_0001_s80_a04.png", "train/gt/im_0001.png"),
                   ("train/in/im_0001_s100_a06.png", "train/gt/im_0001.png"),
                   ("train/in/im_0002_s85_a05.png", "train/gt/im_0002.png")],
         "test": [(f"{OR_TEST}/in/im_0601_s80_a04.png", f"{OR_TEST}/gt/im_0601.png")]},
    ),
    "srrs": (
        ["Syn/46.tif", "gt/46.jpg", "Syn/1003.tif", "gt/1003.jpg", "Combine Snow/46.jpg", "Small Snow/46.jpg"],
        {"all": [("Syn/1003.tif", "gt/1003.jpg"), ("Syn/46.tif", "gt/46.jpg")]},
    ),
    "csd": (
        [f"{s}/{d}/{i}.tif" for s, i in (("Train", 1), ("Test", 4)) for d in ("Snow", "Gt", "Mask")],
        {"train": [("Train/Snow/1.tif", "Train/Gt/1.tif")], "test": [("Test/Snow/4.tif", "Test/Gt/4.tif")]},
    ),
    "raindropclarity": (
        [f"{RDC[t]}/{d}/00001/{f}.png" for t in RDC for d in ("Drop", "Blur", "Clear") for f in ("00001", "00002")],
        {f"{t}_{k}": [(f"{RDC[t]}/{d}/00001/{f}.png", f"{RDC[t]}/Clear/00001/{f}.png") for f in ("00001", "00002")]
         for t in RDC for k, d in (("drop", "Drop"), ("blur", "Blur"))},
    ),
}
