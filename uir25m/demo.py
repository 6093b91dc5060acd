"""The demo build (recipe `demo`): all 19 types, train and test, from scikit-image's colour
sample images. Each image is cut into a grid of `size` x `size` tiles (size 0: whole images,
shipped byte for byte). A type's samples walk through the partition's tiles, interleaved across
images so every type sees every image, taking the recipe's `variants` per tile; test images are
never used for training."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from uir25m import manifest, recipes, taxonomy
from uir25m.build import BuildPlan
from uir25m.shards import Item, chunk_stream, clean_tasks, mark_shared_gts
from uir25m.sources import CleanImage
from uir25m.sources.embedded import SOURCE, demo_images


@dataclass(frozen=True)
class DemoSettings:
    per_type: int = 8  # training pairs per type
    test_per_type: int | None = None  # default: max(1, per_type // 4)
    size: int = 256  # tile size; 0 = whole images
    seed: int = 0
    recipe: str = "demo"
    shard_size: int | None = None  # default: the recipe's
    online: bool = False  # every type as online samples over the stored clean images (format 1.2)


    def __post_init__(self) -> None:
        if self.per_type < 1:
            raise ValueError("--per-type must be >= 1")
        if self.size < 0 or 0 < self.size < 16:
            raise ValueError("--size must be 0 (whole images) or >= 16")
        if self.test_per_type is not None and self.test_per_type < 0:
            raise ValueError("--test-per-type must be >= 0")
        if self.shard_size is not None and self.shard_size < 1:
            raise ValueError("--shard-size must be >= 1")

    @property
    def n_test(self) -> int:
        return max(1, self.per_type // 4) if self.test_per_type is None else self.test_per_type


def tiles(image: CleanImage, size: int) -> list[tuple[int, int, int, int] | None]:
    """A centred grid of non-overlapping size x size tiles; [None] (the whole image) when size is 0
    or larger than the image."""
    if size == 0 or size > min(image.width, image.height):
        return [None]
    nx, ny = image.width // size, image.height // size
    x0, y0 = (image.width - nx * size) // 2, (image.height - ny * size) // 2
    return [(x0 + i * size, y0 + j * size, size, size) for j in range(ny) for i in range(nx)]


def _interleave(images: list[CleanImage], size: int) -> list[tuple[CleanImage, tuple[int, int, int, int] | None]]:
    per_image = [[(im, t) for t in tiles(im, size)] for im in images]
    out = []
    for k in range(max((len(p) for p in per_image), default=0)):
        out += [p[k] for p in per_image if k < len(p)]
    return out


def plan(settings: DemoSettings) -> BuildPlan:
    """The demo's fixed task list."""
    recipe = recipes.load(settings.recipe)
    images = demo_images()
    root = images[0].root
    tasks = []
    for partition, n in (("train", settings.per_type), ("test", settings.n_test)):
        cands = _interleave([im for im in images if im.partition == partition], settings.size)
        if n and not cands:
            raise ValueError(f"no demo images for the {partition} partition")
        for code in taxonomy.CODES:
            spec = recipe.synthetic.get(code)
            if spec is None:
                raise ValueError(f"recipe {recipe.name!r} has no entry for {code}: the demo builds all 19 types")
            items = []
            per_image = spec.variants  # the recipe's variants per clean image (or tile)
            for j in range(n):
                rounds, v = divmod(j, per_image)
                image, tile = cands[rounds % len(cands)]
                variant = v + per_image * (rounds // len(cands))
                tile_s = manifest.format_tile(tile)
                level = spec.level_for(variant, f"{SOURCE}|{image.relpath}|{tile_s}|{code}")
                items.append(Item(code, SOURCE, partition, f"v{variant}", level, False, image.relpath, tile=tile))
            if items:
                tasks += chunk_stream(items, partition=partition, code=code, source=SOURCE, root=root,
                                      shard_size=settings.shard_size or recipe.shard_size)
    tasks = mark_shared_gts(tasks)
    _check_keys(tasks)
    if settings.online:
        tasks += clean_tasks(tasks, settings.shard_size or recipe.shard_size)
    stats = {im.relpath: os.stat(os.path.join(root, im.relpath)) for im in images}
    inputs = tuple((SOURCE, rel, st.st_size, st.st_mtime_ns) for rel, st in stats.items())
    used = {it.gt for t in tasks for it in t.items if t.kind == "samples"}
    excluded = tuple(
        {"source": SOURCE, "path": im.relpath, "reason": "excluded_by_recipe",
         "detail": "not needed for the requested --per-type/--test-per-type", "stage": "plan", "type": ""}
        for im in images if im.relpath not in used
    )
    settings_dict: dict[str, Any] = {
        "per_type": settings.per_type, "test_per_type": settings.n_test, "size": settings.size,
        "seed": settings.seed, "source": SOURCE, "shard_size": settings.shard_size or recipe.shard_size,
    }
    return BuildPlan(
        name=recipe.name, seed=settings.seed, tasks=tuple(sorted(tasks, key=lambda t: t.shard)), inputs=inputs,
        recipe=recipe.resolved(), settings=settings_dict, png_level=recipe.png_level,
        overrides={c: dict(r.params) for c, r in recipe.synthetic.items() if r.params}, plan_rejects=excluded,
        online=settings.online,
    )


def _check_keys(tasks: list) -> None:
    seen: set[str] = set()
    for t in tasks:
        for it in t.items:
            key = it.key(manifest.format_tile(it.tile))
            if key in seen:
                raise manifest.FormatError(f"key collision: {key}")
            seen.add(key)
