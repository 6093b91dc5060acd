"""Online samples (format 1.2): pairs the loader makes from a stored clean image.

An online build stores each clean image of its synthetic parts once, whole (`clean/` shards,
listed in `manifests/clean.parquet`), and for every sample only its label and class. The loader
decodes the clean image, cuts the label's tile from it (exactly the builder's tile) and applies
the degradation engine:

- `fixed` (the default): with the label's recorded params, so LQ and GT are pixel for pixel the
  offline build's (with the same engine and codec versions, which the build records and the
  loader compares);
- `fresh`: with params drawn from a seed derived from (loader seed, epoch, key) at the label's
  level, under the recipe's overrides; the batch's label records that seed and those params, so
  any LQ can be made again from its label.

Cost per sample: one decode of the whole clean image (skipped while a reader's small cache of
decoded images holds it), the crop, and the degradation applied to the whole tile (the builder's
input; applying it to the training crop only would give other pixels for the non-local types).
"""
from __future__ import annotations

import json
import logging
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data.sampling import derive_seed
from uir25m import degrade, manifest, reader

log = logging.getLogger("uir.data")

MODES = ("fixed", "fresh")
DECODED_CACHE_BYTES = 128 << 20  # decoded clean images a reader keeps (tiles of one image reuse it)


class OnlineVersionWarning(UserWarning):
    """The loader's degradation engine or codecs differ from those the online build recorded."""


@dataclass
class CleanImages:
    """clean.parquet as flat arrays: per image its shard (int32 into `shards`) and PNG span."""

    keys: pa.Array
    shards: list[str]
    shard_id: np.ndarray  # int32
    spans: np.ndarray  # int64 N x 2: png offset, png size
    sources: list[str]  # the source of each shard (the cache group its reads lease under)

    @classmethod
    def from_table(cls, table: pa.Table, where: str) -> CleanImages:
        shard_col = table.column("shard").combine_chunks()
        reader.check_column(shard_col, where, shards=True)
        encoded = shard_col.dictionary_encode()
        shards = encoded.dictionary.to_pylist()
        first_source = {}
        for shard, source in zip(shard_col.to_pylist(), table.column("source").to_pylist()):
            first_source.setdefault(shard, source)
        spans = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in ("png_offset", "png_size")], axis=1)
        return cls(table.column("key").combine_chunks(), shards, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32),
                   spans.astype(np.int64), [first_source[s] for s in shards])

    def ids(self, keys: pa.Array) -> np.ndarray:
        """int32 index of each key (-1: not an online sample's key, or not listed)."""
        found = pc.index_in(keys, value_set=self.keys)
        return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int32)


def build_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """build.json's online block ({} for an offline build)."""
    online = info.get("online")
    return dict(online) if isinstance(online, Mapping) else {}


def version_differences(recorded: Mapping[str, str]) -> list[str]:
    """What differs between the engine and codecs an online build recorded and this process's."""
    mine = degrade.engine_versions()
    return [f"{k} {recorded.get(k, '?')} (build) vs {mine.get(k, '?')} (here)"
            for k in sorted(set(recorded) | set(mine)) if recorded.get(k) != mine.get(k)]


def warn_versions(where: str, recorded: Mapping[str, str]) -> None:
    differ = version_differences(recorded)
    if differ:
        warnings.warn(f"{where}: online samples are made with other versions than the build's ({'; '.join(differ)}): "
                      "their pixels may differ from an offline build's", OnlineVersionWarning, stacklevel=3)


class Synthesiser:
    """A reader's maker of online samples: decoded clean images (a small LRU) in, LQ / GT out."""

    def __init__(self, mode: str, seed: int, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                 cache_bytes: int = DECODED_CACHE_BYTES):
        if mode not in MODES:
            raise ValueError(f"online must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode, self.seed = mode, seed
        self.overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        self.cache_bytes = cache_bytes
        self._decoded: OrderedDict[int, np.ndarray] = OrderedDict()
        self._held = 0

    def cached(self, clean_id: int) -> np.ndarray | None:
        image = self._decoded.get(clean_id)
        if image is not None:
            self._decoded.move_to_end(clean_id)
        return image

    def decode(self, clean_id: int, png: bytes, where: str) -> np.ndarray:
        """The clean image as RGB uint8 (kept for the next tiles of it)."""
        rgb = np.ascontiguousarray(reader.decode_bgr(png, where)[..., ::-1])
        self._decoded[clean_id] = rgb
        self._held += rgb.nbytes
        while self._held > self.cache_bytes and len(self._decoded) > 1:
            _, old = self._decoded.popitem(last=False)
            self._held -= old.nbytes
        return rgb

    def make(self, label: dict[str, Any], clean: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """(LQ, GT) as BGR uint8 views and the label they match."""
        tile = tuple(int(v) for v in label["tile"].split(",")) if label["tile"] else None
        if tile is None and (clean.shape[1], clean.shape[0]) != (label["width"], label["height"]):
            raise reader.DatasetError("size_mismatch", f"clean image {clean.shape[1]}x{clean.shape[0]}, label "
                                                       f"{label['width']}x{label['height']}")
        try:
            gt = _crop(clean, tile)
        except ValueError as e:
            raise reader.DatasetError("bad_tile", str(e)) from None
        if self.mode == "fresh":
            seed = derive_seed(self.seed, "online", epoch, label["key"])
            override = self.overrides.get(label["type"], {}).get(label["level"])
            params = degrade.sample(label["type"], np.random.default_rng(seed), label["level"], override)
            label = {**label, "seed": seed, "params": manifest.canonical_json(params)}
        else:
            params = json.loads(label["params"])
        lq = degrade.apply(label["type"], gt, params)
        return lq[..., ::-1], gt[..., ::-1], label


def _crop(image: np.ndarray, tile: tuple[int, ...] | None) -> np.ndarray:
    if not tile:
        return image
    if len(tile) != 4 or min(tile[2:]) <= 0:
        raise ValueError(f"tile {tile} is not x,y,w,h")
    x, y, w, h = tile
    if x < 0 or y < 0 or x + w > image.shape[1] or y + h > image.shape[0]:
        raise ValueError(f"tile {tile} outside the clean image of {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image[y:y + h, x:x + w])


def regenerate(label: Mapping[str, Any], clean_rgb: np.ndarray) -> np.ndarray:
    """The LQ (RGB uint8) a label describes, from its clean image: for checking a batch."""
    tile = tuple(int(v) for v in label["tile"].split(",")) if label["tile"] else None
    return degrade.apply(label["type"], _crop(clean_rgb, tile), json.loads(label["params"]))
