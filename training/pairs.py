"""Whole pairs, in manifest order, for evaluation and probing: one ranged read per sample from a
dataset folder, `file://`, `s3://` or `hf://`, no cropping, no augmentation."""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from training.data import catalog_from_dataset, decode, preset_for
from training.data.online import Synthesiser
from uir25m import subsets


@dataclass(frozen=True)
class Pair:
    key: str
    code: str  # the degradation type
    source: str
    label: dict[str, Any]
    lq: np.ndarray  # H x W x 3 uint8, RGB
    gt: np.ndarray


def iter_pairs(source: str, *, partition: str = "test", subset: str | subsets.Preset = "all",
               types: Sequence[str] | None = None, per_type: int | None = None,
               endpoint_url: str | None = None) -> Iterator[Pair]:
    """The pairs of `partition` selected by the preset (or `types`), type by type in class-id
    order; at most `per_type` of each type. A sample that cannot be read or decoded raises an
    OSError naming the shard and the key (evaluation must not silently drop test images)."""
    catalog = catalog_from_dataset(source, preset_for(subset, types), partition, endpoint_url)
    taken: dict[str, int] = {}
    synth = Synthesiser("fixed", 0)
    for stream in catalog.streams:
        for pos in range(stream.samples or 0):
            if per_type is not None and taken.get(stream.code, 0) >= per_type:
                break
            shard = stream.shards[stream.shard_id[pos]]
            key = stream.key(pos)
            try:
                clean_id = -1 if stream.clean_id is None else int(stream.clean_id[pos])
                if clean_id >= 0:  # an online sample (format 1.2): made as the offline build stores it
                    label = json.loads(catalog.read_label(stream, pos))
                    clean = synth.cached(clean_id)
                    if clean is None:
                        clean = synth.decode(clean_id, catalog.read_clean(clean_id), f"{shard} clean image")
                    lq, gt, label = synth.make(label, clean, 0)
                    lq, gt = np.ascontiguousarray(lq[..., ::-1]), np.ascontiguousarray(gt[..., ::-1])
                else:
                    gt_bytes, json_bytes, lq_bytes = catalog.read_sample(stream, pos)
                    label = json.loads(json_bytes)
                    lq = cv2.cvtColor(decode(lq_bytes), cv2.COLOR_BGR2RGB)
                    gt = cv2.cvtColor(decode(gt_bytes), cv2.COLOR_BGR2RGB)
            except (OSError, ValueError, cv2.error) as e:
                raise OSError(f"{source}: {shard} sample {key}: {e}") from None
            taken[stream.code] = taken.get(stream.code, 0) + 1
            yield Pair(key, stream.code, stream.source, label, lq, gt)
