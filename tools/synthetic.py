"""Synthetic UIR datasets for benchmarks and tests: manifests of N samples with the real schema
(UIR-2.5M's streams scaled to N, or streams given), and real tars of small PNGs behind them.

- `samples_table(n | streams)`: samples.parquet's table and shards.parquet's rows;
- `make_manifest_only(root, n)`: a finished build's manifests, every shard file empty;
- `make_real(root, n | streams, size=1, distinct=False)`: real shards of size x size PNGs (one
  image for every sample, or a distinct one each), every manifest row checkable.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from uir25m import manifest, taxonomy

SHARD_SIZE = 1000
MEMBER = {"cls": 2, "gt.png": 300_000, "json": 700, "lq.png": 300_000}


# --- synthetic datasets ----------------------------------------------------------------------------

def _streams(n: int) -> list[tuple[str, str, str, bool, int]]:
    """(partition, code, source, real, count) for N samples: UIR-2.5M's streams scaled to N."""
    from uir25m import card, recipes

    base = card.recipe_streams(recipes.load("uir-2.5m"))
    known = [s.pairs for s in base if s.pairs]
    counts = np.array([s.pairs or int(np.median(known)) for s in base], dtype=np.float64)
    scaled = counts / counts.sum() * n
    whole = np.floor(scaled).astype(np.int64)
    whole[np.argsort(scaled - whole)[::-1][: n - whole.sum()]] += 1  # largest remainders
    out = []
    for s, c in zip(base, whole):
        test = int(c // 50)
        out.append(("train", s.code, s.source, bool(s.real), int(c - test)))
        if test:
            out.append(("test", s.code, s.source, bool(s.real), test))
    return out


def _offsets(count: int) -> dict[str, np.ndarray]:
    """Member offsets in a shard of `count` samples laid out as the tar writer lays them."""
    per = sum(512 + -(-size // 512) * 512 for size in MEMBER.values())
    start = np.arange(count, dtype=np.int64) * per
    out, pos = {}, np.zeros(count, dtype=np.int64)
    for field, size in MEMBER.items():
        out[field.split(".")[0]] = start + pos + 512
        pos += 512 + -(-size // 512) * 512
    return out


Streams = list[tuple[str, str, str, bool, int]]  # (partition, code, source, real, samples)


def samples_table(n: int | None = None, seed: int = 0, streams: Streams | None = None,
                  shard_size: int = SHARD_SIZE) -> tuple[pa.Table, list[dict]]:
    """(samples.parquet's table, shards.parquet's rows) of a synthetic build of N samples (or of
    the streams given)."""
    rng = np.random.default_rng(seed)
    tables, shard_rows, first = [], [], 0
    for partition, code, source, real, count in streams or _streams(n):
        t = taxonomy.get(code)
        synthetic = not real and code in ("gn", "gb", "j", "ms", "ds_n_b_j", "db", "mb", "h", "rs", "s", "ll")
        i = np.arange(count)
        variants = 6 if synthetic else 1
        for j, start in enumerate(range(0, count, shard_size)):
            m = min(shard_size, count - start)
            shard = manifest.shard_relpath(partition, code, source, j)
            ii = i[start:start + m]
            off = _offsets(m)
            key = [f"{code}_{source}_{x:016x}" for x in ii + first]
            gt = [f"{partition}/scene{x // 600:05d}/clean/{x // variants:08d}.png" for x in ii]
            lq = [""] * m if synthetic else [f"{partition}/scene{x // 600:05d}/degraded/{x:08d}.png" for x in ii]
            add = {
                "format_version": [manifest.FORMAT_VERSION] * m, "key": key, "type": [code] * m,
                "class_id": [t.class_id] * m, "family": [t.family] * m, "group": [t.group] * m,
                "partition": [partition] * m, "source": [source] * m,
                "variant": [f"v{x % variants}" for x in ii] if synthetic else ["captured"] * m,
                "real": [real] * m, "level": ["gaussian_25" if synthetic else ""] * m,
                "params": ['{"sigma":25.0}' if synthetic else "{}"] * m,
                "seed": rng.integers(0, 2**60, m).tolist() if synthetic else [-1] * m,
                "width": [512] * m, "height": [512] * m, "lq_source_format": ["synthetic" if synthetic else "png"] * m,
                "gt_source_format": ["png"] * m, "conversions": ["[]"] * m, "tile": [""] * m,
                "source_lq": lq, "source_gt": gt, "shard": [shard] * m, "index": list(range(m)),
                **{f"{f}_offset": off[f].tolist() for f in ("cls", "gt", "json", "lq")},
                **{f"{f.split('.')[0]}_size": [s] * m for f, s in MEMBER.items()},
                "lq_sha256": [os.urandom(32).hex() for _ in range(m)], "gt_sha256": [os.urandom(32).hex() for _ in range(m)],
                "online": [False] * m, "clean_key": [""] * m,
            }
            tables.append(pa.Table.from_pydict(add, schema=manifest.SAMPLES_SCHEMA))
            shard_rows.append({"shard": shard, "partition": partition, "group": t.group, "type": code,
                               "class_id": t.class_id, "source": source, "count": m,
                               "bytes": int(off["lq"][-1] + MEMBER["lq.png"] + 1024), "sha256": os.urandom(32).hex(),
                               "source_pairs": m, "kind": "samples"})
        first += count
    return pa.concat_tables(tables).combine_chunks(), shard_rows


def _build_json(root: Path, n: int) -> None:
    manifest.write_build_json(root, {"format_version": manifest.FORMAT_VERSION, "status": "complete",
                                     "fingerprint": "synthetic", "recipe": {"name": "uir-2.5m", "description": "synthetic"},
                                     "settings": {"seed": 0}, "versions": {}, "encoder": {}, "summary": {"pairs": n}})


def make_manifest_only(root: Path, n: int) -> None:
    """A finished build's manifests of N samples; every shard file exists and is empty."""
    table, shard_rows = samples_table(n)
    manifest.write_parquet(table, root / manifest.SAMPLES)
    manifest.write_parquet(manifest.table(shard_rows, manifest.SHARDS_SCHEMA), root / manifest.SHARDS)
    rejects = [{"source": "gopro", "path": f"train/x/{i}.png", "reason": "excluded_by_recipe", "detail": "",
                "stage": "plan", "type": ""} for i in range(max(1, n // 1000))]
    manifest.write_parquet(manifest.table(rejects, manifest.REJECTS_SCHEMA), root / manifest.REJECTS)
    for r in shard_rows:
        (root / r["shard"]).parent.mkdir(parents=True, exist_ok=True)
        (root / r["shard"]).touch()
    _build_json(root, n)


def _photos(size: int) -> list[np.ndarray]:
    """scikit-image's colour samples, resized to `size`: what natural images cost to decode."""
    import cv2
    import skimage.data

    pics = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.immunohistochemistry()]
    return [cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA) for p in pics]


def make_real(root: Path, n: int | None = None, *, streams: Streams | None = None, size: int = 1,
              distinct: bool = False, photos: bool = False, shard_size: int = SHARD_SIZE) -> None:
    """A finished build of N samples (or of `streams`) with real tars of size x size PNGs, one image
    for all (or a distinct GT, and LQ = 255 - GT, per sample: random noise, or with `photos`
    natural images shifted): every manifest row checkable."""
    from uir25m import codec
    from uir25m.tarwriter import ShardTarWriter

    table, shard_rows = samples_table(n, streams=streams, shard_size=shard_size)
    rng = np.random.default_rng(1)
    pics = _photos(size) if photos else []
    pixel = codec.encode_png(np.full((size, size, 3), 127, np.uint8))
    sha = hashlib.sha256(pixel).hexdigest()
    label_cols = list(manifest.LABEL_COLUMNS)
    parts, start = [], 0
    for r in shard_rows:
        rows = table.slice(start, r["count"])
        start += r["count"]
        labels = rows.select(label_cols).to_pylist()
        offs = {f: [] for f in ("cls", "gt", "json", "lq")}
        shas = {"lq": [], "gt": []}
        with ShardTarWriter(root / r["shard"]) as tar:
            for lab in labels:
                lab["width"] = lab["height"] = size
                gt = lq = pixel
                if distinct:
                    if photos:
                        base = pics[int(rng.integers(len(pics)))]
                        img = np.roll(base, tuple(rng.integers(0, size, 2)), axis=(0, 1))  # distinct, still a photo
                    else:
                        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                    gt, lq = codec.encode_png(img), codec.encode_png(255 - img)
                blobs = {"cls": str(lab["class_id"]).encode(), "gt.png": gt, "json": manifest.Label(**lab).to_json_bytes(),
                         "lq.png": lq}
                for field in manifest.FIELDS:
                    offs[field.split(".")[0]].append((tar.add(f"{lab['key']}.{field}", blobs[field]), len(blobs[field])))
                shas["lq"].append(hashlib.sha256(lq).hexdigest() if distinct else sha)
                shas["gt"].append(hashlib.sha256(gt).hexdigest() if distinct else sha)
        r["bytes"], r["sha256"] = tar.size, tar.sha256
        cols = {c: rows.column(c) for c in rows.column_names}
        cols["width"] = cols["height"] = pa.array([size] * r["count"], pa.int64())
        for f, pairs in offs.items():
            cols[f"{f}_offset"] = pa.array([o for o, _ in pairs], pa.int64())
            cols[f"{f}_size"] = pa.array([s for _, s in pairs], pa.int64())
        cols["lq_sha256"], cols["gt_sha256"] = pa.array(shas["lq"]), pa.array(shas["gt"])
        cols["online"], cols["clean_key"] = pa.array([False] * r["count"]), pa.array([""] * r["count"])
        parts.append(pa.table(cols, schema=manifest.SAMPLES_SCHEMA))
    with manifest.ParquetSink(root / manifest.SAMPLES, manifest.SAMPLES_SCHEMA) as sink:
        for p in parts:
            sink.write(p)
    manifest.write_parquet(manifest.table(shard_rows, manifest.SHARDS_SCHEMA), root / manifest.SHARDS)
    manifest.write_parquet(manifest.REJECTS_SCHEMA.empty_table(), root / manifest.REJECTS)
    _build_json(root, table.num_rows)
