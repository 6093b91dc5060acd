"""The dataset card: `README.md` with Hugging Face YAML front matter (configs per preset, group and
type, train/test splits, features, licence) and a body with counts, presets and their effective
shares, every source's licence, redistribution status and citation, and how the data was built.

The same renderer serves a built dataset (counts from its manifests, `uir-build card D`) and a
recipe (counts the catalogue expects, the repository's DATASET_CARD.md for `uir-2.5m`).
"""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw, ImageFont

from uir25m import atomic, manifest, recipes, sources, subsets, taxonomy

HF_LICENCES = {"CC BY 4.0": "cc-by-4.0", "CC BY-NC-SA 4.0": "cc-by-nc-sa-4.0", "MIT": "mit", "Apache-2.0": "apache-2.0"}
CHART = "stats.png"


@dataclass(frozen=True)
class Stream:
    """One (partition, type, source) stream of a dataset."""

    partition: str
    code: str
    source: str
    pairs: int | None  # None: unknown (a recipe's expected count)
    real: int | None  # how many of them are real captures
    bytes: int | None = None
    online: int = 0  # how many the loader makes from stored clean images (format 1.2)

    @property
    def group(self) -> str:
        return taxonomy.get(self.code).group


# --- where the streams come from -----------------------------------------------------------------

def dataset_streams(root: str | os.PathLike) -> list[Stream]:
    """Streams of a built dataset, from its manifests (grouped columnar)."""
    samples = manifest.read_sample_columns(root, ["partition", "type", "source", "real", "online"])
    size = {(g["partition"], g["type"], g["source"]): g["bytes"] for g in manifest.count_by(
        manifest.sample_kinds(manifest.read_shards(root)).select(["partition", "type", "source", "bytes"]),
        ["partition", "type", "source"], sums=["bytes"])}
    return sorted((Stream(g["partition"], g["type"], g["source"], g["count"], g["real"],
                          size.get((g["partition"], g["type"], g["source"]), 0), g["online"])
                   for g in manifest.count_by(samples, ["partition", "type", "source"], sums=["real", "online"])),
                  key=_order)


def recipe_streams(recipe: recipes.Recipe) -> list[Stream]:
    """Streams a recipe would build from complete downloads, with the catalogue's expected counts."""
    out: dict[tuple, list] = {}
    for entry in recipe.sources:
        spec = sources.load(entry.source)
        for name in entry.parts:
            part = spec.part(name)
            codes = [part.type] if part.type else list(entry.synthesise)
            for code in codes:
                mult = 1 if part.type else recipe.synthetic[code].variants
                n = None if part.expected is None else part.expected * mult
                key = (part.partition, code, spec.name)
                prev = out.get(key, [0, 0])
                total = None if n is None or prev[0] is None else prev[0] + n
                real = None if total is None else (prev[1] or 0) + (n if part.real else 0)
                out[key] = [total, real]
    return sorted((Stream(p, c, s, n, r) for (p, c, s), (n, r) in out.items()), key=_order)


def _order(s: Stream) -> tuple:
    return (taxonomy.get(s.code).class_id, s.source, s.partition != "train")


# --- front matter --------------------------------------------------------------------------------

def _features() -> list[dict[str, Any]]:
    dtypes = {"int64": "int64", "bool": "bool", "string": "string"}
    label = [{"name": f.name, "dtype": dtypes[str(f.type)]} for f in manifest.LABEL_SCHEMA]
    return [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"},
            {"name": "cls", "dtype": "int64"}, {"name": "gt.png", "dtype": "image"},
            {"name": "json", "struct": label}, {"name": "lq.png", "dtype": "image"}]


def _splits(streams: list[Stream], globs) -> list[dict[str, Any]]:
    """data_files for the streams `globs` maps to path patterns, one split per partition present."""
    out = []
    for partition in manifest.PARTITIONS:
        paths = sorted({g for s in streams if s.partition == partition for g in globs(s)})
        if paths:
            out.append({"split": partition, "path": paths[0] if len(paths) == 1 else paths})
    return out


def _config_streams(streams: list[Stream]) -> list[tuple[str, list[Stream], Any]]:
    """(config name, its streams, their path globs): all, single, mixed, every preset with a
    stream present, every type."""
    out: list[tuple[str, list[Stream], Any]] = [("all", streams, lambda s: [f"data/{s.partition}/**/*.tar"])]
    for group in taxonomy.GROUPS:
        mine = [s for s in streams if s.group == group]
        if mine:
            out.append((group, mine, lambda s: [f"data/{s.partition}/{s.group}/**/*.tar"]))
    for name in subsets.names():
        preset = subsets.load(name)
        if name in taxonomy.GROUPS or name == "all":
            continue
        mine = [s for s in streams if preset.selection(s.code, s.source)]
        if mine:
            out.append((name, mine, lambda s: [f"data/{s.partition}/{s.group}/{s.code}/{s.code}-{s.source}-*.tar"]))
    for code in taxonomy.CODES:
        mine = [s for s in streams if s.code == code]
        if mine:
            out.append((code, mine, lambda s: [f"data/{s.partition}/{s.group}/{s.code}/*.tar"]))
    return out


def configs(streams: list[Stream]) -> list[dict[str, Any]]:
    """HF configs: all (default), single, mixed, every preset with a stream present, every type."""
    out = [{"config_name": name, "data_files": _splits(mine, globs)} for name, mine, globs in _config_streams(streams)]
    out[0]["default"] = True
    return out


def online_configs(streams: list[Stream]) -> list[str]:
    """The configs with online samples (format 1.2): through `datasets` their samples give the label
    and class only; the loader makes the pixels."""
    return [name for name, mine, _ in _config_streams(streams) if any(s.online for s in mine)]


def _licence(names: list[str]) -> dict[str, str]:
    licences = {_source_meta(n)["licence"] for n in names}
    if len(licences) == 1 and next(iter(licences)) in HF_LICENCES:
        return {"license": HF_LICENCES[next(iter(licences))]}
    return {"license": "other", "license_name": "per-source-licences", "license_link": "README.md"}


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def front_matter(streams: list[Stream], title: str) -> dict[str, Any]:
    names = sorted({s.source for s in streams})
    total = sum(s.pairs or 0 for s in streams)
    cfgs = configs(streams)
    fm: dict[str, Any] = {"pretty_name": title, **_licence(names), "task_categories": ["image-to-image"],
                          "tags": ["image-restoration", "all-in-one-image-restoration", "webdataset", "uir-2.5m"],
                          "size_categories": [_size_category(total)], "configs": cfgs,
                          "dataset_info": [{"config_name": c["config_name"], "features": _features()} for c in cfgs]}
    return fm


# --- body ----------------------------------------------------------------------------------------

def _source_meta(name: str) -> dict[str, Any]:
    if name in sources.names():
        s = sources.load(name)
        return {"name": name, "title": s.title, "homepage": s.homepage, "licence": s.licence,
                "redistribution": s.redistribution, "verified": s.layout_verified, "citation": s.citation.strip()}
    if name == "skimage":
        return {"name": name, "title": "scikit-image's bundled sample images", "homepage": "https://scikit-image.org",
                "licence": "see skimage/data/README.txt (public domain, CC0 and other terms per image)",
                "redistribution": "unknown", "verified": True, "citation": ""}
    return {"name": name, "title": name, "homepage": "", "licence": "unknown", "redistribution": "unknown",
            "verified": False, "citation": ""}


def _fmt(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _counts_table(streams: list[Stream], show_bytes: bool) -> list[str]:
    head = "| id | type | group | source | train | test | real |" + (" MB |" if show_bytes else "")
    lines = [head, "|---:|---|---|---|---:|---:|---:|" + ("---:|" if show_bytes else "")]
    rows: dict[tuple, dict[str, Stream]] = defaultdict(dict)
    for s in streams:
        rows[(s.code, s.source)][s.partition] = s
    for (code, src), parts in sorted(rows.items(), key=lambda kv: (taxonomy.get(kv[0][0]).class_id, kv[0][1])):
        t = taxonomy.get(code)
        tr, te = parts.get("train"), parts.get("test")
        reals = [p.real for p in parts.values()]
        real = None if any(r is None for r in reals) else sum(reals)
        line = (f"| {t.class_id} | `{code}` {t.name} | {t.group} | {src} | {_fmt(tr.pairs) if tr else '–'} | "
                f"{_fmt(te.pairs) if te else '–'} | {_fmt(real)} |")
        if show_bytes:
            line += f" {sum(p.bytes or 0 for p in parts.values()) / 1e6:,.1f} |"
        lines.append(line)
    return lines


def _presets_section(streams: list[Stream]) -> list[str]:
    lines = ["| preset | type: ratio | effective share of draws (train) |", "|---|---|---|"]
    counts = {(s.code, s.source): s.pairs for s in streams if s.partition == "train" and s.pairs}
    for name in subsets.names():
        preset = subsets.load(name)
        ratios = ", ".join(f"{sel.code}: {sel.ratio:g}" for sel in preset.select)
        weights = subsets.weights(preset, counts)
        shares = subsets.shares(weights)
        share = ", ".join(f"{c} {100 * v:.1f} %" for c, v in shares.items()) or "none of its sources in this data"
        absent = [c for c in preset.codes if c not in shares]
        if absent and shares:
            share += f" (absent here: {', '.join(absent)})"
        lines.append(f"| `{name}` | {ratios} | {share} |")
    return lines


def _sources_section(names: list[str]) -> list[str]:
    lines = ["| source | licence | redistribution | layout verified |", "|---|---|---|---|"]
    metas = [_source_meta(n) for n in names]
    for m in metas:
        title = f"[{m['title']}]({m['homepage']})" if m["homepage"] else m["title"]
        lines.append(f"| `{m['name']}`: {title} | {m['licence']} | {m['redistribution']} | {'yes' if m['verified'] else 'no'} |")
    cites = [m["citation"] for m in metas if m["citation"]]
    if cites:
        lines += ["", "<details><summary>Citations (BibTeX)</summary>", "", "```bibtex", *cites, "```", "", "</details>"]
    blocked = [m["name"] for m in metas if m["redistribution"] != "yes"]
    if blocked:
        lines += ["", f"Redistribution of {', '.join(blocked)} is `no` or `unknown` in the catalogue: publish this data "
                      "only where you hold the rights (`uir-build push` refuses a public Hub repository otherwise)."]
    return lines


def render(streams: list[Stream], *, title: str, summary: str, provenance: list[str], chart: bool,
           show_bytes: bool) -> str:
    """The whole card."""
    fm = front_matter(streams, title)
    total = sum(s.pairs or 0 for s in streams)
    unknown = any(s.pairs is None for s in streams)
    types = sorted({s.code for s in streams}, key=lambda c: taxonomy.get(c).class_id)
    names = sorted({s.source for s in streams})
    config_names = [c["config_name"] for c in fm["configs"]]
    example = "5d" if "5d" in config_names else next((c for c in config_names if c != "all"), "all")  # one the card has
    body = [
        f"# {title}", "", summary, "",
        f"**{total:,}{'+' if unknown else ''} pairs**, {len(types)} degradation types, {len(names)} sources. "
        "Format: WebDataset shards of `<key>.lq.png`, `<key>.gt.png`, `<key>.json` (the label) and `<key>.cls`, "
        "with parquet manifests; the spec is docs/FORMAT.md of the uir25m project (UIR format v1).", "",
        "## Loading", "", "```python", "import datasets",
        f'ds = datasets.load_dataset("<this repo or folder>", "{example}", split="train", streaming=True)',
        'sample = next(iter(ds))  # lq.png, gt.png (PIL images), json (label), cls', "```", "",
        "Configs: " + ", ".join(f"`{c['config_name']}`" for c in fm["configs"]) + ".", "",
        "## Contents", "", *_counts_table(streams, show_bytes), "",
    ]
    online = online_configs(streams)
    if online:
        made = sum(s.online for s in streams)
        body += ["## Online samples", "",
                 f"{made:,} of the {total:,} pairs are online: their shards hold the label (`json`) and class (`cls`) "
                 "only, and the clean images they are made from lie once each in `clean/` (listed in "
                 "`manifests/clean.parquet`). The uir25m loader (`training.data.make_loader`) makes their LQ and GT "
                 "from the clean image, the label's tile, level and seed, pixel for pixel as an offline build "
                 "stores them; through `datasets` these samples have no `lq.png` / `gt.png`. Configs that need "
                 "the loader: " + ", ".join(f"`{c}`" for c in online) + ".", ""]
    if chart:
        body += [f"![pairs per type]({CHART})", ""]
    body += ["## Presets and repeat sampling", "",
             "Weights = ratio × source pairs of each (type, source) stream; shares as a loader would draw them "
             "from this data. A preset names its sources: a type whose sources are not in this data is absent.", "",
             *_presets_section(streams), "", "## Sources", "", *_sources_section(names), "",
             "## How it was built", "", *provenance, ""]
    head = yaml.safe_dump(fm, sort_keys=False, allow_unicode=True, width=120)
    return f"---\n{head}---\n\n" + "\n".join(body)


def chart_png(streams: list[Stream], path: Path) -> None:
    """A horizontal bar chart of pairs per type (train and test, log scale), deterministic."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in streams:
        per[s.code][0 if s.partition == "train" else 1] += s.pairs or 0
    codes = [c for c in taxonomy.CODES if c in per]
    top = max(1, max(max(v) for v in per.values()))
    w, row, left = 900, 26, 190
    im = Image.new("RGB", (w, 40 + row * len(codes)), "white")
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    d.text((10, 8), "pairs per type (log scale): train (blue), test (orange)", fill="black", font=font)
    scale = (w - left - 90) / math.log10(top + 1)
    for i, code in enumerate(codes):
        y = 32 + i * row
        d.text((10, y + 4), f"{taxonomy.get(code).class_id:>2} {code}", fill="black", font=font)
        for j, (n, colour) in enumerate(zip(per[code], ("#3b6fb6", "#e8893a"))):
            length = int(scale * math.log10(n + 1))
            d.rectangle([left, y + 2 + j * 11, left + length, y + 11 + j * 11], fill=colour)
            d.text((left + length + 6, y + j * 11), f"{n:,}", fill="gray", font=font)
    im.save(path, format="PNG")


# --- entry points --------------------------------------------------------------------------------

def dataset_card(root: str | os.PathLike) -> Path:
    """Write README.md (and the chart beside it) for a built dataset; returns the README's path."""
    root = Path(root)
    streams = dataset_streams(root)
    info = manifest.read_build_json(root)
    recipe = info.get("recipe", {}) or {}
    title = f"UIR-2.5M format: {recipe.get('name', 'dataset')}"
    if info.get("subset_of"):
        title += f" (subset {info['subset_of'].get('preset', '')})"
    provenance = [
        f"- recipe `{recipe.get('name', '?')}`, seed {info.get('settings', {}).get('seed', '?')}, "
        f"format version {info.get('format_version')}, plan fingerprint `{str(info.get('fingerprint', ''))[:16]}`",
        f"- built {info.get('started', '?')} – {info.get('finished', '?')} with " +
        ", ".join(f"{k} {v}" for k, v in sorted((info.get("versions") or {}).items())),
        f"- encoder: {json.dumps(info.get('encoder', {}), sort_keys=True)}",
    ]
    if isinstance(info.get("online"), dict):
        engine = info["online"].get("engine") or {}
        provenance.append("- online samples made with the degradation engine " +
                          ", ".join(f"{k} {v}" for k, v in sorted(engine.items())) +
                          " (the loader's pixels equal an offline build's with these versions)")
    if info.get("subset_of"):
        provenance.append(f"- subset of a dataset with fingerprint `{str(info['subset_of'].get('fingerprint', ''))[:16]}`, "
                          f"preset `{info['subset_of'].get('preset')}`")
    summary = recipe.get("description") or "Paired degraded / clean images for universal image restoration."
    chart_png(streams, root / CHART)
    text = render(streams, title=title, summary=summary.strip(), provenance=provenance, chart=True, show_bytes=True)
    atomic.write_bytes(root / "README.md", text.encode("utf-8"))
    return root / "README.md"


def recipe_card(name: str = "uir-2.5m") -> str:
    """The card of a recipe built from complete downloads, with the catalogue's expected counts."""
    recipe = recipes.load(name)
    streams = recipe_streams(recipe)
    provenance = [
        f"- `uir-build build --recipe {name} --root RAW --out D`, with the datasets listed under Sources downloaded "
        "into RAW (`uir-build sources check --root RAW` says what is present).",
        "- Counts are what the source catalogue expects from complete downloads (`?` where a dataset's count is "
        "unknown); a real build's card (`uir-build card D`) gives the counts it shipped.",
        "- Synthetic types: " + (", ".join(f"`{c}` {t.variants} variant(s) per clean image from levels "
                                           f"{', '.join(t.levels)}" for c, t in recipe.synthetic.items()) or "none") + ".",
    ]
    return render(streams, title="UIR-2.5M", summary=recipe.description.strip(), provenance=provenance,
                  chart=False, show_bytes=False)
