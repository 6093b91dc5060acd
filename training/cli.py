"""`uir-train`: the training side's command line: `shares` (what repeat sampling draws from a
dataset for a preset) and `pretrain` (MaskDCPT)."""
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


def _pretrain(args: argparse.Namespace) -> int:
    import logging

    from training import config, loop

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.source={args.data}")
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    cfg = config.load(args.config, overrides)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = args.out or f"runs/{cfg.name}"
    summary = loop.pretrain(cfg, out, resume=args.resume, progress=not args.quiet)
    if int(__import__("os").environ.get("RANK", 0)) == 0:
        print(json.dumps(summary, indent=2, sort_keys=True) if args.json else
              f"{summary['out']}: step {summary['step']}, loss {summary.get('loss', float('nan')):.4f}, "
              f"accuracy {summary.get('acc', float('nan')):.2f}; export: {summary['out']}/export.pt")
    return 0


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

    t = sub.add_parser("pretrain", help="MaskDCPT pretraining (run it under torchrun for several GPUs)",
                       description="MaskDCPT pretraining on UIR shards: masked restoration + degradation classification.")
    t.add_argument("--config", required=True, help="a YAML file or a name in training/configs (e.g. demo)")
    t.add_argument("--data", help="the dataset (folder, s3://, hf://); overrides data.source")
    t.add_argument("--out", help="run folder (default runs/<name>)")
    t.add_argument("--max-steps", type=int, help="overrides max_steps")
    t.add_argument("--resume", action="store_true", help="continue exactly from <out>/last.pt")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.batch_size=8 optim.grad_clip=1.0")
    t.set_defaults(func=_pretrain)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"uir-train {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
