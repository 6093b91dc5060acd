"""Recipes (`manifests/recipes/*.yaml`): which types to build and, for synthetic types, how many
variants per clean image, from which levels, with which parameter distributions.

    name: demo
    shard_size: 1000          # samples per shard (one shard = one build task)
    png_level: 3              # OpenCV PNG compression level of encoded images
    synthetic:
      gn:
        variants: 6           # per clean image (or tile)
        levels: [gaussian_15, gaussian_25, gaussian_50, gaussian, poisson, salt_pepper]
        params:               # optional: override a level's distributions, key by key
          gaussian: {sigma: {uniform: [5, 50]}}

Variant i of a clean image uses `levels[(i + h) % len(levels)]`, h a stable hash of the image's
identity: with `variants == len(levels)` every image gets every level once.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from uir25m import degrade, packaged, taxonomy
from uir25m.degrade.params import is_distribution, validate

_TOP_KEYS = {"name", "description", "shard_size", "png_level", "synthetic"}
_TYPE_KEYS = {"variants", "levels", "params"}


class RecipeError(ValueError):
    """A recipe that does not validate."""


@dataclass(frozen=True)
class TypeRecipe:
    code: str
    variants: int
    levels: tuple[str, ...]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # level -> overrides

    def level_for(self, variant: int, identity: str) -> str:
        h = int.from_bytes(hashlib.sha256(identity.encode("utf-8")).digest()[:4], "big")
        return self.levels[(variant + h) % len(self.levels)]

    def override(self, level: str) -> dict[str, Any]:
        return self.params.get(level, {})


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    shard_size: int
    png_level: int
    synthetic: dict[str, TypeRecipe]
    raw: dict[str, Any]  # the parsed YAML

    def resolved(self) -> dict[str, Any]:
        """The recipe with every level's full distribution spec (the type's defaults with the
        recipe's overrides merged in): what build.json records and the plan fingerprint hashes,
        so a changed default in the code is never mistaken for the same plan."""
        return {
            "name": self.name, "description": self.description, "shard_size": self.shard_size,
            "png_level": self.png_level,
            "synthetic": {
                code: {
                    "variants": t.variants,
                    "levels": {lvl: degrade.get(code).spec(lvl, t.override(lvl)) for lvl in t.levels},
                }
                for code, t in self.synthetic.items()
            },
        }


def parse(data: dict[str, Any], where: str = "recipe") -> Recipe:
    """Validate a recipe mapping; every error names the recipe and the key."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise RecipeError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise RecipeError(f"{where}: `name` is required")
    shard_size = data.get("shard_size", 1000)
    if not isinstance(shard_size, int) or shard_size < 1:
        raise RecipeError(f"{where}: shard_size must be a positive integer")
    png_level = data.get("png_level", 3)
    if not isinstance(png_level, int) or not 0 <= png_level <= 9:
        raise RecipeError(f"{where}: png_level must be 0..9")
    synthetic: dict[str, TypeRecipe] = {}
    for code, spec in (data.get("synthetic") or {}).items():
        try:
            taxonomy.get(code)
        except taxonomy.UnknownTypeError as e:
            raise RecipeError(f"{where}: synthetic: {e}") from None
        synthetic[code] = _type_recipe(code, spec or {}, f"{where}: synthetic.{code}")
    return Recipe(name, str(data.get("description", "")), shard_size, png_level, synthetic, data)


def _type_recipe(code: str, spec: dict[str, Any], where: str) -> TypeRecipe:
    unknown = set(spec) - _TYPE_KEYS
    if unknown:
        raise RecipeError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_TYPE_KEYS)}")
    entry = degrade.get(code)
    variants = spec.get("variants", 1)
    if not isinstance(variants, int) or variants < 1:
        raise RecipeError(f"{where}: variants must be a positive integer")
    levels = spec.get("levels") or [entry.default_level]
    if isinstance(levels, str):
        levels = [levels]
    for level in levels:
        if level not in entry.levels:
            raise RecipeError(f"{where}: unknown level {level!r}; levels of {code}: {', '.join(entry.levels)}")
    params = spec.get("params") or {}
    for level, override in params.items():
        if level not in levels:
            raise RecipeError(f"{where}: params for level {level!r}, which the recipe does not use")
        known = set(entry.levels[level])
        for key in override:
            if key not in known:  # catches misspelt or outdated parameter names, which would be ignored
                raise RecipeError(f"{where}: params.{level}: unknown parameter {key!r}; known: {', '.join(sorted(known))}")
        try:
            validate({k: v for k, v in override.items() if is_distribution(v)}, f"{where}: params.{level}")
        except ValueError as e:
            raise RecipeError(str(e)) from None
    return TypeRecipe(code, variants, tuple(levels), {k: dict(v) for k, v in params.items()})


def load(name: str) -> Recipe:
    """A packaged recipe by name."""
    return parse(packaged.load("recipes", name), f"recipes/{name}.yaml")
