"""`uir-build`: a thin command line over the library (parse -> one call -> summary or --json)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from uir25m import build, demo

    settings = demo.DemoSettings(per_type=args.per_type, test_per_type=args.test_per_type,
                                 size=args.size, seed=args.seed, shard_size=args.shard_size, online=args.online)
    plan = demo.plan(settings)
    summary = build.run_build(plan, args.out, workers=args.workers, mode=args.mode,
                              strict=args.strict, progress=not (args.json or args.quiet))
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else build.format_summary(summary))
    return 0


def _build(args: argparse.Namespace) -> int:
    from uir25m import build, estimate, planner

    dirs = _source_dirs(args.source)
    if not args.dry_run and not args.out:
        raise ValueError("--out is required (or use --dry-run)")
    settings = planner.BuildSettings(recipe=args.recipe, raw=args.root, seed=args.seed, tile=args.tile,
                                     shard_size=args.shard_size, source_dirs=dirs, online=args.online)
    plan, report = planner.plan(settings)
    log = sys.stderr if args.json else sys.stdout
    for line in report.lines():
        print(line, file=log)
    if args.dry_run:
        est = estimate.estimate(plan, workers=args.workers)
        if args.json:
            print(json.dumps({"report": report.__dict__, "estimate": est}, indent=2, sort_keys=True))
        else:
            print("\n".join(estimate.format_estimate(est)))
        return 0
    summary = build.run_build(plan, args.out, workers=args.workers, mode=args.mode, strict=args.strict,
                              progress=not (args.json or args.quiet), executor=args.executor, address=args.address)
    summary["missing_sources"] = [m["source"] for m in report.missing]
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else build.format_summary(summary))
    if report.missing and not args.json:
        print(f"not built (sources absent): {', '.join(summary['missing_sources'])}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from uir25m import verify

    result = verify.verify(args.dir, decode=args.decode, workers=args.workers)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for p in result["problems"]:
            print(f"{p['shard']}{' ' + p['key'] if p['key'] else ''}: {p['problem']}")
        state = "OK" if result["ok"] else f"{len(result['problems'])} problem(s)"
        print(f"{result['root']}: {result['shards']} shards, {result['samples']} samples checked"
              f"{' and decoded' if args.decode else ''}: {state}")
    return 0 if result["ok"] else 1


def _sources(args: argparse.Namespace) -> int:
    from uir25m import catalog

    if args.action == "list":
        rows = catalog.listing()
        print(json.dumps(rows, indent=2) if args.json else catalog.format_listing(rows))
        return 0
    if not args.root and not args.source:
        raise ValueError("sources check needs --root RAW (or --source NAME=PATH)")
    result = catalog.check(args.root, _source_dirs(args.source))
    print(json.dumps(result, indent=2) if args.json else catalog.format_check(result))
    return 0


def _source_dirs(items: list[str] | None) -> dict[str, str]:
    dirs = {}
    for kv in items or []:
        name, sep, path = kv.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--source expects NAME=PATH, got {kv!r}")
        dirs[name] = path
    return dirs


def _subset(args: argparse.Namespace) -> int:
    from uir25m import subsets, subsetting

    preset = subsets.from_codes(args.types) if args.types else subsets.load(args.preset)
    result = subsetting.make_subset(args.dir, preset, args.to, link=args.link)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"{result['to']}: {result['pairs']} pairs in {result['shards']} shards of {', '.join(result['types'])} "
              f"({result['linked']} linked, {result['copied']} copied), {result['bytes'] / 1e6:.1f} MB; card written")
    return 0


def _card(args: argparse.Namespace) -> int:
    from uir25m import card

    if args.recipe:
        text = card.recipe_card(args.recipe)
        if args.out:
            from uir25m import atomic

            atomic.write_bytes(Path(args.out), text.encode("utf-8"))
            print(f"wrote {args.out}")
        else:
            print(text)
        return 0
    if not args.dir:
        raise ValueError("card needs a dataset folder, or --recipe NAME")
    print(f"wrote {card.dataset_card(args.dir)}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from uir25m import publish

    result = publish.push(args.dir, args.to, private=args.private, endpoint_url=args.endpoint_url,
                          hold_rights=args.i_hold_the_rights, progress=not args.json)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    for w in result["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    done = f"{result['sent']} sent, {result['skipped']} already there" if "sent" in result else result.get("commit", "")
    print(f"{result['to']}: {result['files']} files, {result['bytes'] / 1e6:.1f} MB ({done})")
    if result["not_redistributable"]:
        print(f"note: redistribution of {', '.join(result['not_redistributable'])} is not `yes` in the catalogue")
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
    d.add_argument("--online", action="store_true",
                   help="store each clean image once; the loader makes the degraded pairs (format 1.2)")
    d.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_demo)

    b = sub.add_parser("build", help="build a recipe from the datasets you downloaded",
                       description="Build a recipe (uir-2.5m, 5d, 12d, mixed, test-5d, test-dn, ... or a YAML file) from "
                                   "the catalogued datasets found under --root. Absent sources are reported and skipped.")
    b.add_argument("--recipe", required=True, help="a packaged recipe name or a recipe YAML file")
    b.add_argument("--root", help="the folder holding the downloaded datasets")
    b.add_argument("--out", help="output folder (not needed with --dry-run)")
    b.add_argument("--source", action="append", metavar="NAME=PATH", help="where one source lives, if not under --root (repeatable)")
    b.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    b.add_argument("--executor", choices=("local", "ray"), default="local", help="local processes (default) or Ray")
    b.add_argument("--address", help="Ray cluster address (with --executor ray; default: start a local Ray)")
    b.add_argument("--tile", type=int, default=None, help="cut images larger than T x T into tiles (0: whole images)")
    b.add_argument("--shard-size", type=int, default=None, help="source items per shard (default: the recipe's)")
    b.add_argument("--seed", type=int, default=0, help="build seed (default 0)")
    b.add_argument("--mode", choices=("resume", "overwrite"), default="resume")
    b.add_argument("--strict", action="store_true", help="fail on the first bad input, naming the file and the reason")
    b.add_argument("--online", action="store_true",
                   help="synthetic types: store each clean image once, the loader makes the pairs (format 1.2); "
                        "captured pairs stay stored")
    b.add_argument("--dry-run", action="store_true", help="plan, then print tasks, items, estimated bytes and time")
    b.add_argument("--json", action="store_true")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)

    r = sub.add_parser("recipe", help="list the packaged recipes, or show one with every level's distributions")
    r.add_argument("name", nargs="?", help="a recipe name (e.g. demo); none: list them")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_recipe)

    c = sub.add_parser("sources", help="the catalogue of public datasets: list it, or check what is present",
                       description="`sources list`: every catalogued dataset with its types, licence, redistribution and "
                                   "whether its layout was verified. `sources check --root RAW`: which are present under "
                                   "RAW, part by part, pairs found vs expected, unpaired files.")
    c.add_argument("action", choices=("list", "check"))
    c.add_argument("--root", help="the folder holding the downloaded datasets (check)")
    c.add_argument("--source", action="append", metavar="NAME=PATH", help="where one source lives (repeatable)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_sources)

    sb = sub.add_parser("subset", help="a preset's (type, source) selection as a new dataset folder")
    sb.add_argument("dir", help="a built dataset folder")
    g = sb.add_mutually_exclusive_group(required=True)
    g.add_argument("--preset", help="5d, 12d, single, mixed or all")
    g.add_argument("--types", help="comma-separated codes (any source)")
    sb.add_argument("--to", required=True, help="the new folder")
    sb.add_argument("--link", action="store_true", help="hard-link the shards where possible instead of copying")
    sb.add_argument("--json", action="store_true")
    sb.set_defaults(func=_subset)

    cd = sub.add_parser("card", help="write the dataset card (README.md with HF configs, and a chart)")
    cd.add_argument("dir", nargs="?", help="a built dataset folder")
    cd.add_argument("--recipe", help="instead: the card of a recipe from the catalogue's expected counts")
    cd.add_argument("--out", help="with --recipe: the file to write (default: print)")
    cd.set_defaults(func=_card)

    ps = sub.add_parser("push", help="publish a dataset to a folder, the Hugging Face Hub or S3",
                        description="Publish to file:///path, hf://user/name or s3://bucket/prefix. Sends only what is not "
                                    "there yet. Credentials: your HF login or HF_TOKEN; AWS environment or config files.")
    ps.add_argument("dir", help="a built dataset folder (with its card)")
    ps.add_argument("--to", required=True, help="file:///path | hf://user/name | s3://bucket/prefix")
    ps.add_argument("--private", action="store_true", help="create the Hub repository as private")
    ps.add_argument("--endpoint-url", help="S3 endpoint (e.g. MinIO, R2) or Hub endpoint")
    ps.add_argument("--i-hold-the-rights", action="store_true",
                    help="publish publicly although a source's redistribution is `no` or `unknown` in the catalogue")
    ps.add_argument("--json", action="store_true")
    ps.set_defaults(func=_push)

    v = sub.add_parser("verify", help="re-hash every shard and sample against the manifests")
    v.add_argument("dir", help="a built dataset folder")
    v.add_argument("--decode", action="store_true", help="also decode every image and check its size")
    v.add_argument("--workers", type=int, default=4, help="shards checked at once (default 4)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_verify)

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
    from uir25m.publish import PublishError

    try:
        return args.func(args)
    except (ResumeError, BuildError, AccountingError, PublishError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"uir-build {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"uir-build {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
