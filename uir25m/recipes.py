"""Recipes (`manifests/recipes/*.yaml`): which types to build and, for synthetic types, how many
variants per clean image, from which levels, with which parameter distributions.

    name: 5d
    shard_size: 1000          # source items per shard (one shard = one build task)
    png_level: 3              # OpenCV PNG compression level of encoded images
    tile: 0                   # cut images larger than this into tiles (0: whole images)
    sources:                  # what `uir-build build` takes from which catalogued source
      - {source: gopro, parts: [train]}                    # captured pairs: the part's type
      - {source: bsd400, parts: [all], synthesise: [gn]}   # clean images: these synthetic types
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
from pathlib import Path
from typing import Any

import yaml

from uir25m import degrade, packaged, sources, taxonomy
from uir25m.degrade.params import is_distribution, validate

_TOP_KEYS = {"name", "description", "shard_size", "png_level", "tile", "sources", "synthetic"}
_TYPE_KEYS = {"variants", "levels", "params"}
_ENTRY_KEYS = {"source", "parts", "synthesise"}


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
class SourceEntry:
    """Parts of one catalogued source; clean parts name the synthetic types made from them."""

    source: str
    parts: tuple[str, ...]
    synthesise: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    shard_size: int
    png_level: int
    synthetic: dict[str, TypeRecipe]
    raw: dict[str, Any]  # the parsed YAML
    tile: int = 0
    sources: tuple[SourceEntry, ...] = ()

    def resolved(self) -> dict[str, Any]:
        """The recipe with every level's full distribution spec (the type's defaults with the
        recipe's overrides merged in): what build.json records and the plan fingerprint hashes,
        so a changed default in the code is never mistaken for the same plan."""
        return {
            "name": self.name, "description": self.description, "shard_size": self.shard_size,
            "png_level": self.png_level, "tile": self.tile,
            "sources": [{"source": e.source, "parts": list(e.parts), "synthesise": list(e.synthesise)} for e in self.sources],
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
    tile = data.get("tile", 0)
    if not isinstance(tile, int) or tile < 0 or 0 < tile < 16:
        raise RecipeError(f"{where}: tile must be 0 (whole images) or >= 16")
    entries = tuple(_entry(e, synthetic, f"{where}: sources[{i}]") for i, e in enumerate(data.get("sources") or []))
    if len({e.source for e in entries}) != len(entries):
        raise RecipeError(f"{where}: a source is listed twice; list all its parts in one entry")
    return Recipe(name, str(data.get("description", "")), shard_size, png_level, synthetic, data, tile, entries)


def _entry(data: Any, synthetic: dict[str, TypeRecipe], where: str) -> SourceEntry:
    if not isinstance(data, dict) or set(data) - _ENTRY_KEYS or "source" not in data:
        raise RecipeError(f"{where}: expected {{source, parts, synthesise}}, got {data!r}")
    try:
        spec = sources.load(data["source"])
    except FileNotFoundError as e:
        raise RecipeError(f"{where}: {e}") from None
    parts = data.get("parts", "*")
    names = [p.name for p in spec.parts] if parts == "*" else parts
    if not isinstance(names, list) or not names:
        raise RecipeError(f"{where}: parts must be '*' or a non-empty list")
    synth = tuple(data.get("synthesise") or ())
    for code in synth:
        if code not in synthetic:
            raise RecipeError(f"{where}: synthesise {code!r}, which the recipe's synthetic: section does not define")
    for name in names:
        try:
            part = spec.part(name)
        except sources.SourceError as e:
            raise RecipeError(f"{where}: {e}") from None
        if part.type is None and not synth:
            raise RecipeError(f"{where}: part {name} holds clean images only: say which types to synthesise from it")
    if synth and all(spec.part(n).type is not None for n in names):
        raise RecipeError(f"{where}: synthesise applies to clean-only parts, and none of {names} is one")
    return SourceEntry(spec.name, tuple(names), synth)


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
    """A packaged recipe by name, or a recipe YAML file by path."""
    path = Path(name)
    if name.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {name} does not exist")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise RecipeError(f"{name}: expected a mapping at the top level")
        return parse(data, str(path))
    return parse(packaged.load("recipes", name), f"recipes/{name}.yaml")
