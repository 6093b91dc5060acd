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
import torch

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


def make_clean(raw: Path, *, train_textures: int, test_textures: int, size: int, seed: int,
               natural: bool = True) -> dict[str, int]:
    """Write the clean images as RAW/DIV2K/DIV2K_{train,valid}_HR/*.png; returns counts. Natural
    images are cut into size x size tiles (a source image's tiles stay in one partition)."""
    import skimage

    root = Path(skimage.__file__).resolve().parent / "data"
    dirs = {"train": raw / "DIV2K" / "DIV2K_train_HR", "test": raw / "DIV2K" / "DIV2K_valid_HR"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    rng = np.random.default_rng(seed)
    for name, part in NATURAL.items() if natural else ():
        img = cv2.cvtColor(cv2.imread(str(root / name), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        images[part] += _tiles(img, size)
    for name, part in GREY.items() if natural else ():
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
                        size=args.size, seed=args.seed, natural=not args.quick)
    (work / "clean.json").write_text(json.dumps(counts))
    recipe = work / "recipe.yaml"
    write_recipe(recipe, args.variants)
    cmd = [sys.executable, "-m", "uir25m.cli", "build", "--recipe", str(recipe), "--root", str(raw), "--out", str(data),
           "--workers", str(args.workers)]
    subprocess.run(cmd, check=True, stdout=sys.stderr)  # keep our stdout for the report alone
    return data, counts


# --- training, probing, evaluation ---------------------------------------------------------------

def _common(args: argparse.Namespace, data: Path) -> list[str]:
    return [f"data.source={data}", f"data.types=[{','.join(TYPES)}]", f"data.crop={args.crop}",
            f"data.batch_size={args.batch}", "data.num_workers=1", "model.arch=nafnet_tiny",
            f"model.kwargs={{width: {args.width}}}", f"seed={args.seed}", "log_every=50",
            "image_every=1000000"]


def train_run(work: Path, name: str, config_name: str, overrides: list[str]) -> dict:
    """One training run in work/name (skipped when its export is already there); the summary with
    wall time."""
    from training import config, loop

    out = work / name
    done = out / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = config.load(config_name, overrides)
    t0 = time.perf_counter()
    summary = loop.train(cfg, out, resume=(out / "last.pt").is_file(), progress=True)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["steps"] = cfg.max_steps
    done.write_text(json.dumps(summary, indent=2))
    return summary


def evaluate_psnr(model: torch.nn.Module, test: list) -> dict:
    from training import evaluate

    report = evaluate.evaluate(model, test, progress=False)
    return {"mean": report["mean_over_types"]["psnr"], "ssim": report["mean_over_types"]["ssim"],
            "types": {c: round(v["psnr"], 3) for c, v in report["types"].items()}, "count": report["count"]}


def probe_accuracy(model: torch.nn.Module, probe_set: list, args: argparse.Namespace) -> dict:
    from training import probe

    report = probe.probe(model, probe_set, crop=args.probe_crop, progress=False)
    return {"mean": report["accuracy"]["mean"], "std": report["accuracy"]["std"], "n": report["n"]}


def first_per_type(test: list, per_type: int) -> list:
    """The first `per_type` pairs of each type, in order (what `iter_pairs(..., per_type=...)` yields)."""
    taken: dict[str, int] = {}
    out = []
    for p in test:
        if taken.get(p.code, 0) < per_type:
            taken[p.code] = taken.get(p.code, 0) + 1
            out.append(p)
    return out


def classifier_accuracy(run_dir: Path, probe_set: list, args: argparse.Namespace) -> dict:
    """The pretraining's own classifier (from last.pt) on unmasked centre crops of the held-out LQ
    images, its logits restricted to the five types: accuracy overall and per type."""
    from training import config, probe, restore
    from training.pretrain import MaskDCPT
    from uir25m import taxonomy

    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    task = MaskDCPT(config.from_dict(state["config"], str(run_dir / "last.pt")))
    task.load_state_dict(state["model"])
    task.eval()
    ids = [taxonomy.get(c).class_id for c in TYPES]
    multiple = restore.size_multiple(task.backbone)
    hits: dict[str, list[bool]] = {c: [] for c in TYPES}
    with torch.no_grad():
        for p in probe_set:
            c = min(args.probe_crop, *p.lq.shape[:2]) // multiple * multiple
            x = restore.to_tensor(probe.center_crop(p.lq, c))
            logits = task.classifier(task.backbone.forward_pretrain(x, None)["taps"])
            hits[p.code].append(int(logits[0, ids].argmax()) == TYPES.index(p.code))
    n = sum(len(h) for h in hits.values())
    return {"mean": sum(sum(h) for h in hits.values()) / n, "n": n,
            "types": {k: round(sum(h) / len(h), 3) for k, h in hits.items() if h}}


def run(args: argparse.Namespace) -> dict:
    from training import checkpoints, pairs, probe

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data, counts = build(work, args)
    common = _common(args, data)
    P, F = args.pretrain_steps, args.finetune_steps
    runs = {
        "pre_r50": train_run(work, "pre_r50", "demo", common + ["model.classifier_blocks=1", "mask_ratio=0.5",
                                                              f"max_steps={P}", f"ckpt_every={P}"]),
        "pre_r00": train_run(work, "pre_r00", "demo", common + ["model.classifier_blocks=1", "mask_ratio=0",
                                                              f"max_steps={P}", f"ckpt_every={P}"]),
    }
    ft = common + [f"max_steps={F}", f"ckpt_every={F}"]
    runs["ft_scratch"] = train_run(work, "ft_scratch", "demo_finetune", ft)
    runs["ft_r00"] = train_run(work, "ft_r00", "demo_finetune", ft + [f"init={work / 'pre_r00' / 'export.pt'}"])
    runs["ft_r50"] = train_run(work, "ft_r50", "demo_finetune", ft + [f"init={work / 'pre_r50' / 'export.pt'}"])
    long = common + [f"max_steps={P + F}", f"ckpt_every={P + F}"]
    runs["ft_scratch_long"] = train_run(work, "ft_scratch_long", "demo_finetune", long)

    test = list(pairs.iter_pairs(str(data), partition="test", types=TYPES))  # read and decoded once
    probe_set = first_per_type(test, 100)
    psnr = {"lq": evaluate_psnr(torch.nn.Identity(), test)}
    for name in ("ft_scratch", "ft_r00", "ft_r50", "ft_scratch_long"):
        psnr[name] = evaluate_psnr(checkpoints.load_model(work / name / "export.pt")[0], test)
    random_init = probe.random_model("nafnet_tiny", seed=args.seed, width=args.width)
    acc = {"random_init": probe_accuracy(random_init, probe_set, args)}
    for name in ("pre_r00", "pre_r50"):
        acc[name] = probe_accuracy(checkpoints.load_model(work / name / "export.pt")[0], probe_set, args)
    cls = {name: classifier_accuracy(work / name, probe_set, args) for name in ("pre_r00", "pre_r50")}
    return {"settings": vars(args), "clean_images": counts, "runs": runs, "psnr": psnr, "probe": acc,
            "classifier": cls,
            "seconds": round(time.perf_counter() - t_start, 1),
            "machine": {"python": platform.python_version(), "torch": torch.__version__,
                        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}}


def to_markdown(r: dict) -> str:
    s, runs, psnr, acc = r["settings"], r["runs"], r["psnr"], r["probe"]
    P, F = s["pretrain_steps"], s["finetune_steps"]
    lines = [(f"Clean images: {r['clean_images']['train']} train, {r['clean_images']['test']} held-out test; "
              f"{s['variants']} variants per image and type; NAFNet width {s['width']}; batch {s['batch']}, "
              f"crop {s['crop']}; seed {s['seed']}; this invocation {r['seconds'] / 60:.1f} min (finished runs are "
              "reused; the train times below are the runs' own)."), "",
             "**(a) KNN probe** (held-out test pairs, 5 types, features before the head, k 5, 5 seeds)", "",
             "| network | accuracy |", "|---|---:|"]
    names = {"random_init": "random init", "pre_r00": f"after pretraining, mask ratio 0 ({P} steps)",
             "pre_r50": f"after MaskDCPT, mask ratio 0.5 ({P} steps)"}
    lines += [f"| {names[k]} | {100 * v['mean']:.1f} ± {100 * v['std']:.1f} % |" for k, v in acc.items()]
    lines += ["", (f"The pretraining's own classifier on unmasked {s['probe_crop']}² centre crops of the held-out "
                   "pairs (5-way):"), "", "| network | accuracy | " + " | ".join(TYPES) + " |", "|---|---:|" + "---:|" * len(TYPES)]
    for k, v in r["classifier"].items():
        lines.append(f"| {names[k]} | {100 * v['mean']:.1f} % | "
                     + " | ".join(f"{100 * v['types'][c]:.0f} %" for c in TYPES) + " |")
    lines += ["", f"**(b, c) Fine-tuning** ({F} steps each; PSNR on the held-out pairs, dB)", "",
              "| start | fine-tune steps | pretrain steps | " + " | ".join(TYPES) + " | mean | train time |",
              "|---|---:|---:|" + "---:|" * len(TYPES) + "---:|---:|"]
    rows = [("LQ (no restoration)", "lq", "—", "—"), ("scratch", "ft_scratch", F, 0),
            ("pretrained, mask ratio 0", "ft_r00", F, P), ("MaskDCPT, mask ratio 0.5", "ft_r50", F, P),
            ("scratch, equal total steps", "ft_scratch_long", P + F, 0)]
    for label, key, fsteps, psteps in rows:
        row = psnr[key]
        seconds = ""
        if key in runs:
            seconds = runs[key]["seconds"] + (runs["pre_" + key[3:]]["seconds"] if key in ("ft_r00", "ft_r50") else 0)
            seconds = f"{seconds / 60:.1f} min"
        lines.append(f"| {label} | {fsteps} | {psteps} | " + " | ".join(f"{row['types'][c]:.2f}" for c in TYPES)
                     + f" | **{row['mean']:.2f}** | {seconds} |")
    gain = psnr["ft_r50"]["mean"] - psnr["ft_scratch"]["mean"]
    lines += ["", (f"MaskDCPT vs scratch at equal fine-tune steps: {gain:+.2f} dB (target ≥ +0.5); "
                   f"vs mask ratio 0: {psnr['ft_r50']['mean'] - psnr['ft_r00']['mean']:+.2f} dB; "
                   f"vs scratch at equal total steps: {psnr['ft_r50']['mean'] - psnr['ft_scratch_long']['mean']:+.2f} dB. "
                   f"Probe after MaskDCPT: {100 * acc['pre_r50']['mean']:.1f} % (target ≥ 90 %).")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/fidelity", help="folder for the data and every run (reused on re-runs)")
    ap.add_argument("--pretrain-steps", type=int, default=2000)
    ap.add_argument("--finetune-steps", type=int, default=1500)
    ap.add_argument("--width", type=int, default=16, help="NAFNet width (nafnet_tiny's 4 levels)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--probe-crop", type=int, default=128)
    ap.add_argument("--variants", type=int, default=4, help="degraded variants per clean image and type")
    ap.add_argument("--train-textures", type=int, default=60)
    ap.add_argument("--test-textures", type=int, default=6)
    ap.add_argument("--size", type=int, default=192, help="clean image / tile side")
    ap.add_argument("--workers", type=int, default=2, help="build workers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a smoke run: textures only, few steps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.pretrain_steps, args.finetune_steps = min(args.pretrain_steps, 6), min(args.finetune_steps, 4)
        args.train_textures, args.test_textures, args.size, args.variants = 8, 8, 96, 1
        args.probe_crop, args.width = 64, 8
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
