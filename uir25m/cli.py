"""`uir-build`: a thin command line over the library (parse -> one call -> summary or --json)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from uir25m import build, demo

    settings = demo.DemoSettings(per_type=args.per_type, test_per_type=args.test_per_type,
                                 size=args.size, seed=args.seed, shard_size=args.shard_size)
    plan = demo.plan(settings)
    summary = build.run_build(plan, args.out, workers=args.workers, mode=args.mode,
                              strict=args.strict, progress=not (args.json or args.quiet))
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else build.format_summary(summary))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from uir25m import stats

    s = stats.stats(args.dir)
    print(json.dumps(s, indent=2, sort_keys=True) if args.json else stats.format_stats(s))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from uir25m import preview

    path = preview.preview(args.dir, args.out, per_type=args.per_type, height=args.height, partition=args.partition)
    print(f"wrote {path}")
    return 0


def _recipe(args: argparse.Namespace) -> int:
    from uir25m import packaged, recipes

    if not args.name:
        print("\n".join(packaged.names("recipes")))
        return 0
    resolved = recipes.load(args.name).resolved()
    if args.json:
        print(json.dumps(resolved, indent=2, sort_keys=True))
    else:
        import yaml

        print(yaml.safe_dump(resolved, sort_keys=False, width=100, default_flow_style=None), end="")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="uir-build", description="Build UIR-format datasets (WebDataset shards + label manifests).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="build all 19 types from scikit-image's sample images",
                       description="Build the demo dataset (recipe `demo`): all 19 degradation types, train and test "
                                   "partitions, from the colour sample images shipped inside scikit-image.")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--per-type", type=int, default=8, help="training pairs per type (default 8)")
    d.add_argument("--test-per-type", type=int, default=None, help="test pairs per type (default per-type // 4, at least 1)")
    d.add_argument("--size", type=int, default=256, help="tile size in pixels; 0 = whole images (default 256)")
    d.add_argument("--shard-size", type=int, default=None, help="samples per shard (default: the recipe's, 1000)")
    d.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    d.add_argument("--seed", type=int, default=0, help="build seed (default 0)")
    d.add_argument("--mode", choices=("resume", "overwrite"), default="resume",
                   help="resume an interrupted build of the same plan (default) or start over")
    d.add_argument("--strict", action="store_true", help="fail on the first bad input instead of rejecting it")
    d.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_demo)

    r = sub.add_parser("recipe", help="list the packaged recipes, or show one with every level's distributions")
    r.add_argument("name", nargs="?", help="a recipe name (e.g. demo); none: list them")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_recipe)

    s = sub.add_parser("stats", help="counts per type, group, partition and source")
    s.add_argument("dir", help="a built dataset folder")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_stats)

    v = sub.add_parser("preview", help="a contact sheet: one labelled row per type, LQ beside GT")
    v.add_argument("dir", help="a built dataset folder")
    v.add_argument("--out", required=True, help="PNG file to write")
    v.add_argument("--per-type", type=int, default=2, help="pairs per row (default 2)")
    v.add_argument("--height", type=int, default=128, help="thumbnail height (default 128)")
    v.add_argument("--partition", default="train", choices=("train", "test"))
    v.set_defaults(func=_preview)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from uir25m.build import AccountingError, ResumeError
    from uir25m.executors import BuildError

    try:
        return args.func(args)
    except (ResumeError, BuildError, AccountingError, FileNotFoundError, ValueError) as e:
        print(f"uir-build {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"uir-build {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
