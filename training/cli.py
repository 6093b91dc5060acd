"""`uir-train`: the training side's command line: `shares` (what repeat sampling draws from a
dataset for a preset), `pretrain` (MaskDCPT), `finetune`, `eval`, `probe` and `restore`."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _shares(args: argparse.Namespace) -> int:
    from uir25m import subsets

    preset = subsets.from_codes(args.types) if args.types else subsets.load(args.preset)
    if args.ratio:
        preset = preset.with_ratios({k: float(v) for k, v in (kv.split("=", 1) for kv in args.ratio)})
    counts = subsets.source_pair_counts(args.data, args.partition)
    weights = subsets.weights(preset, counts)
    if not weights:
        raise ValueError(f"{args.data}: the {args.partition} partition holds none of preset {preset.name!r}'s "
                         f"(type, source) pairs; present: {', '.join(f'{c}/{s}' for c, s in sorted(counts)) or 'nothing'}")
    shares = subsets.shares(weights)
    missing = [c for c in preset.codes if c not in shares]
    result = {
        "preset": preset.name, "data": args.data, "partition": args.partition,
        "streams": [{"type": c, "source": s, "source_pairs": counts[(c, s)], "ratio": preset.selection(c, s).ratio,
                     "weight": w} for (c, s), w in sorted(weights.items())],
        "shares": shares, "missing_types": missing,
    }
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    print(f"preset {preset.name} on {args.data} ({args.partition}): epoch = {sum(weights.values()):g} draws")
    for code, share in shares.items():
        print(f"  {code:<9} {100 * share:6.2f} %")
    if missing:
        print(f"  absent from the data: {', '.join(missing)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import logging
    import os

    from training import config, loop

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.source={args.data}")
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if getattr(args, "init", None):
        overrides.append(f"init={args.init}")
    cfg = config.load(args.config, overrides)
    if cfg.task != args.command:
        raise ValueError(f"config {args.config!r} is a {cfg.task} config: run `uir-train {cfg.task}`")
    if cfg.init and not os.path.isfile(cfg.init):
        raise FileNotFoundError(f"{cfg.init}: no such export to start from (init / --init)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = args.out or f"runs/{cfg.name}"
    if args.resume and args.mode not in (None, "resume"):
        raise ValueError(f"--resume and --mode {args.mode} contradict each other")
    summary = loop.train(cfg, out, mode="resume" if args.resume else args.mode, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        scores = ", ".join(f"{k} {summary[k]:.4f}" for k in ("loss", "acc", "psnr") if k in summary)
        print(json.dumps(summary, indent=2, sort_keys=True) if args.json else
              f"{summary['out']}: step {summary['step']}, {scores}; export: {summary['out']}/export.pt")
    return 0


def _device(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def _probe(args: argparse.Namespace) -> int:
    from training import checkpoints, pairs, probe

    if args.checkpoint:
        model, info = checkpoints.load_model(args.checkpoint, arch=args.arch)
        source = {"checkpoint": args.checkpoint, "arch": info["arch"], "kind": info["kind"], "step": info["step"]}
    else:
        model = probe.random_model(args.random_init, seed=args.seed, init=args.init_scheme)
        source = {"random_init": args.random_init, "seed": args.seed, "init": args.init_scheme}
    device = _device(args.device)
    selection = ({"subset": args.preset} if args.preset else
                 {"types": args.types.split(",") if args.types else list(probe.PAPER_TYPES)})
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(probe.SEEDS)
    stream = pairs.iter_pairs(args.data, partition=args.partition, per_type=args.per_type, **selection)
    report = probe.probe(model, stream, crop=args.crop, pool=args.pool, normalize=args.normalize, k=args.k,
                         seeds=seeds, device=device, batch_size=args.batch_size, progress=not args.quiet)
    report.update(source, data=args.data, partition=args.partition, per_type=args.per_type)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        what = args.checkpoint or f"random-init {args.random_init}"
        print(probe.format_markdown(report, title=f"KNN degradation probe: {what} on {args.data} ({args.partition})"))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from training import checkpoints, evaluate, metrics, pairs

    image_range = float(args.image_range)
    names = [n.strip() for n in args.perceptual.split(",") if n.strip()] if args.perceptual else []
    device = _device(args.device)
    scorers = [metrics.perceptual_metric(n, device=device) for n in names]  # fail before loading anything else
    model, info = checkpoints.load_model(args.checkpoint, arch=args.arch, device=device)
    preset = pairs.preset_for(args.preset, args.types.split(",") if args.types else None)
    stream = pairs.iter_pairs(args.data, partition=args.partition, subset=preset, per_type=args.per_type)
    try:
        report = evaluate.evaluate(model, stream, image_range=image_range, perceptual=scorers,
                                   save_images=args.save_images, device=device, amp=args.bf16,
                                   progress=not args.quiet)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(str(e)) from None
    if not report["count"]:
        raise ValueError(f"{args.data}: the {args.partition} partition holds no pairs of {preset.name!r} "
                         f"({', '.join(preset.codes)})")
    report.update(checkpoint=args.checkpoint, arch=info["arch"], kind=info["kind"], step=info["step"], data=args.data,
                  partition=args.partition, preset=preset.name, per_type=args.per_type,
                  missing_types=[c for c in preset.codes if c not in report["types"]])
    text = evaluate.to_json(report) if args.json else evaluate.to_markdown(
        report, title=f"{args.checkpoint} on {args.data} ({preset.name}, {args.partition})")
    if args.out:
        evaluate.write_report(args.out, text)
    print(text.rstrip("\n"))
    if report["missing_types"] and not args.json:
        print(f"absent from the data: {', '.join(report['missing_types'])}", file=sys.stderr)
    return 0


def _restore(args: argparse.Namespace) -> int:
    from training import checkpoints, restore

    device = _device(args.device)
    model, _ = checkpoints.load_model(args.checkpoint, arch=args.arch, device=device)
    summary = restore.restore_files(model, args.images, args.out, tile=args.tile, overlap=args.overlap,
                                    device=device, amp=args.bf16, progress=not args.quiet)
    if args.json:
        print(json.dumps({"written": [str(p) for p in summary.written],
                          "failed": [{"input": i, "error": r} for i, r in summary.failed]}, indent=2))
    else:
        print(f"restored {len(summary.written)} of {len(summary.written) + len(summary.failed)} images into {args.out}")
    for _, reason in summary.failed:
        print(f"uir-train restore: failed: {reason}", file=sys.stderr)
    return 1 if summary.failed else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="uir-train", description="Train on UIR-format datasets.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("shares", help="per-type share of draws that repeat sampling gives for a preset")
    s.add_argument("--data", required=True, help="a built dataset folder")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--preset", default="all", help="5d, 12d, single, mixed or all (default all)")
    g.add_argument("--types", help="comma-separated codes instead of a preset")
    s.add_argument("--ratio", action="append", metavar="CODE=R", help="override a type's ratio (repeatable)")
    s.add_argument("--partition", default="train", choices=("train", "test"))
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_shares)

    for name, helptext, description in (
        ("pretrain", "MaskDCPT pretraining (run it under torchrun for several GPUs)",
         "MaskDCPT pretraining on UIR shards: masked restoration + degradation classification."),
        ("finetune", "all-in-one restoration from a MaskDCPT export (or from scratch)",
         "Fine-tune a restoration network on UIR shards: L1, AdamW, cosine schedule, EMA, from --init EXPORT."),
    ):
        t = sub.add_parser(name, help=helptext, description=description)
        t.add_argument("--config", required=True, help="a YAML file or a name in training/configs (e.g. demo)")
        if name == "finetune":
            t.add_argument("--init", help="the export.pt (or last.pt) to start from; overrides init (none: scratch)")
        t.add_argument("--data", help="the dataset (folder, s3://, hf://); overrides data.source")
        t.add_argument("--out", help="run folder (default runs/<name>)")
        t.add_argument("--max-steps", type=int, help="overrides max_steps")
        t.add_argument("--resume", action="store_true", help="continue exactly from <out>/last.pt")
        t.add_argument("--mode", choices=("new", "resume", "overwrite"), default=None,
                       help="new (default: refuse a folder that holds a run), resume (= --resume) or overwrite "
                            "(remove the earlier run's checkpoint, export and logs first)")
        t.add_argument("--quiet", action="store_true", help="no progress bar")
        t.add_argument("--json", action="store_true")
        t.add_argument("overrides", nargs="*", metavar="key=value",
                       help="config overrides, e.g. data.batch_size=8 optim.grad_clip=1.0")
        t.set_defaults(func=_train)

    q = sub.add_parser("probe", help="KNN degradation classification on the features before the restoration head",
                       description="The MaskDCPT paper's KNN probe: center-cropped LQ images, the flattened input of "
                                   "the restoration head, k-NN (Euclidean) on 2:1 train:test splits over 5 seeds.")
    w = q.add_mutually_exclusive_group(required=True)
    w.add_argument("--checkpoint", help="export.pt, last.pt or an authors' release (then give --arch)")
    w.add_argument("--random-init", metavar="ARCH", help="a randomly initialised ARCH instead (the paper's baseline)")
    q.add_argument("--data", required=True, help="the dataset (folder, s3://, hf://)")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--types", help="comma-separated codes (default h,rs,gn,mb,ll: the paper's five)")
    g.add_argument("--preset", help="a preset instead of --types (5d, 12d, single, mixed, all)")
    q.add_argument("--partition", default="test", choices=("train", "test"))
    q.add_argument("--per-type", type=int, default=100, help="images per type (default 100, as the paper)")
    q.add_argument("--crop", type=int, default=128,
                   help="center crop side (default 128; smaller images are reflect-padded)")
    q.add_argument("--pool", type=int, default=1,
                   help="average-pool the features by this factor first (default 1: none, as the paper)")
    q.add_argument("--normalize", action="store_true", help="L2-normalise the feature vectors (the paper does not)")
    q.add_argument("--k", type=int, default=5, help="neighbours (default 5)")
    q.add_argument("--seeds", help="comma-separated split seeds (default 0,223,929,1234,10086)")
    q.add_argument("--init-scheme", default="authors", choices=("authors", "default"),
                   help="--random-init weights: the authors' kaiming_uniform(a=2) re-init (default) or the arch's own")
    q.add_argument("--seed", type=int, default=0, help="--random-init seed (default 0)")
    q.add_argument("--batch-size", type=int, default=8)
    _model_options(q, bf16=False)
    q.set_defaults(func=_probe)

    e = sub.add_parser("eval", help="per-type PSNR/SSIM of a checkpoint on a dataset's test pairs (paper protocol)",
                       description="Evaluate with the MaskDCPT paper's protocol: whole images reflect-padded to the "
                                   "model's size multiple, RGB PSNR/SSIM without border crop, clamped to [0, 1].")
    e.add_argument("--checkpoint", required=True, help="export.pt, last.pt or an authors' release (then give --arch)")
    e.add_argument("--data", required=True, help="the dataset (folder, s3://, hf://)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--preset", default="all", help="5d, 12d, single, mixed or all (default all)")
    g.add_argument("--types", help="comma-separated codes instead of a preset")
    e.add_argument("--partition", default="test", choices=("train", "test"))
    e.add_argument("--per-type", type=int, help="at most this many pairs per type (default all)")
    e.add_argument("--image-range", default="1", choices=("1", "255"),
                   help="1: compare floats (default, MaskDCPT's configs); 255: round to 8 bits first")
    e.add_argument("--perceptual", metavar="NAMES", help="comma-separated pyiqa metrics (lpips, piqe, brisque, ...; "
                                                          "needs the metrics extra)")
    e.add_argument("--save-images", metavar="DIR", help="also write the restorations as DIR/<type>/<key>.png")
    e.add_argument("--out", help="also write the table (or the JSON) to this file")
    _model_options(e, bf16=True)
    e.set_defaults(func=_eval)

    r = sub.add_parser("restore", help="restore your own images (any size; tiles for large ones)",
                       description="Restore image files (PNG, JPEG, ...) into DIR/<stem>.png.")
    r.add_argument("--checkpoint", required=True, help="export.pt, last.pt or an authors' release (then give --arch)")
    r.add_argument("images", nargs="+", metavar="IMAGE")
    r.add_argument("--out", required=True, metavar="DIR", help="output folder")
    r.add_argument("--tile", type=int, help="restore in tiles of this many pixels (default: whole images)")
    r.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels, at most tile/2 (default 32)")
    _model_options(r, bf16=True)
    r.set_defaults(func=_restore)
    return p


def _model_options(p: argparse.ArgumentParser, *, bf16: bool) -> None:
    """The options of the commands that run a trained network: eval, probe, restore."""
    p.add_argument("--arch", help="the architecture of an authors' checkpoint (e.g. nafnet_w64)")
    p.add_argument("--device", help="default cuda when available, else cpu")
    if bf16:
        p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from training.data import FaultBudgetError

    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError, FaultBudgetError) as e:
        print(f"uir-train {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
