"""A contact sheet of a built dataset: one labelled row per type, LQ beside GT."""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from uir25m import atomic, manifest, reader, taxonomy

log = logging.getLogger("uir.preview")

LABEL_W = 260


def _thumb(data: bytes, height: int, where: str) -> Image.Image:
    reader.image_size(data, where)  # over the pixel limit: refused before it is inflated
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w = max(1, round(im.width * height / im.height))
    return im.resize((w, height), Image.Resampling.LANCZOS)


def preview(root: str | os.PathLike, out: str | os.PathLike, *, per_type: int = 2, height: int = 128,
            partition: str = "train") -> Path:
    """Write the sheet (PNG) and return its path. Each row: class id, code and name, then up to
    `per_type` (LQ, GT) pairs of that type, read by the offsets in samples.parquet."""
    samples = manifest.read_samples(root)
    cols = samples.select(["key", "type", "partition", "shard", "lq_offset", "lq_size", "gt_offset", "gt_size",
                           "level", "source_gt"]).to_pylist()
    picked: dict[str, list[dict]] = {}
    # prefer the asked partition and samples of different source images; then fill up with any
    for want, distinct in ((partition, True), (partition, False), (None, False)):
        for r in cols:
            row = picked.setdefault(r["type"], [])
            if len(row) >= per_type or r in row or (want is not None and r["partition"] != want):
                continue
            if distinct and any(p["source_gt"] == r["source_gt"] for p in row):
                continue
            row.append(r)
    codes = [c for c in taxonomy.CODES if picked.get(c)]
    if not codes:
        raise ValueError(f"{root}: no samples to preview")
    font = ImageFont.load_default()
    rows, skipped = [], []
    for code in codes:
        t = taxonomy.get(code)
        tiles = []
        for r in picked[code]:
            shard = reader.within(root, r["shard"], f"{manifest.SAMPLES} sample {r['key']}")
            try:
                pair = [_thumb(reader.read_member(shard, r[f"{s}_offset"], r[f"{s}_size"]), height,
                               f"{r['shard']} sample {r['key']} {s}") for s in ("lq", "gt")]
            except (OSError, reader.DatasetError, Image.DecompressionBombError, ValueError) as e:
                skipped.append(f"{r['shard']} sample {r['key']}: {e}")
                continue
            tiles += pair
        width = LABEL_W + sum(im.width + 4 for im in tiles)
        row = Image.new("RGB", (width, height + 4), "white")
        draw = ImageDraw.Draw(row)
        draw.text((6, 6), f"{t.class_id:>2}  {code}", fill="black", font=font)
        draw.text((6, 24), t.name, fill="black", font=font)
        draw.text((6, 42), "levels: " + ", ".join(sorted({r['level'] for r in picked[code]})), fill="gray", font=font)
        draw.text((6, height - 14), "LQ | GT pairs", fill="gray", font=font)
        x = LABEL_W
        for im in tiles:
            row.paste(im, (x, 2))
            x += im.width + 4
        rows.append(row)
    for line in skipped:
        log.warning("preview: skipped %s", line)
    if not rows:
        raise ValueError(f"{root}: no sample could be shown ({len(skipped)} skipped)")
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    out = Path(out)
    with atomic.atomic_open(out, durable=False) as f:
        sheet.save(f, "PNG")
    return out
