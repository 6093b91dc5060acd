"""The parameter-distribution language of recipes and levels, and drawing from it.

A spec maps parameter names to either a constant (number, string, bool, list) or one
distribution, written as a one-key mapping:

    {uniform: [lo, hi]}      float, uniform
    {loguniform: [lo, hi]}   float, uniform in log space (lo > 0)
    {int: [lo, hi]}          integer, both ends included
    {odd: [lo, hi]}          odd integer, both ends included
    {choice: [a, b, ...], p: [pa, pb, ...]}   one of the values (p optional, normalised)

Floats are rounded to 6 significant digits *before* use, so the params stored in a label
reproduce the sample exactly. Keys are drawn in sorted order, so the order of keys in YAML never
changes a draw.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

_KINDS = ("uniform", "loguniform", "int", "odd", "choice")


def round6(x: float) -> float:
    """Round to 6 significant digits (what labels store)."""
    return float(f"{float(x):.6g}")


def is_distribution(value: Any) -> bool:
    return isinstance(value, Mapping) and any(k in value for k in _KINDS)


def validate(spec: Mapping[str, Any], where: str = "spec") -> None:
    """Raise ValueError naming `where` and the key if a distribution is malformed."""
    for key, value in spec.items():
        if not is_distribution(value):
            continue
        kinds = [k for k in _KINDS if k in value]
        extra = set(value) - set(kinds) - {"p"}
        if len(kinds) != 1 or extra:
            raise ValueError(f"{where}: {key}: expected one of {_KINDS} (+ p for choice), got {dict(value)}")
        kind = kinds[0]
        arg = value[kind]
        if kind == "choice":
            if not isinstance(arg, list) or not arg:
                raise ValueError(f"{where}: {key}: choice needs a non-empty list")
            p = value.get("p")
            if p is not None and (len(p) != len(arg) or min(p) < 0 or sum(p) <= 0):
                raise ValueError(f"{where}: {key}: p must be non-negative weights, one per choice")
            continue
        if not (isinstance(arg, (list, tuple)) and len(arg) == 2):
            raise ValueError(f"{where}: {key}: {kind} needs [lo, hi]")
        lo, hi = arg
        if not lo <= hi:
            raise ValueError(f"{where}: {key}: {kind} needs lo <= hi, got {arg}")
        if kind == "loguniform" and lo <= 0:
            raise ValueError(f"{where}: {key}: loguniform needs lo > 0")
        if kind == "odd" and _odd_range(lo, hi) == []:
            raise ValueError(f"{where}: {key}: no odd integer in {arg}")


def _odd_range(lo: float, hi: float) -> list[int]:
    start = int(math.ceil(lo))
    start += 1 - start % 2
    return list(range(start, int(math.floor(hi)) + 1, 2))


def draw(rng: np.random.Generator, value: Any) -> Any:
    """Draw one value from a constant or a distribution."""
    if not is_distribution(value):
        return value
    if "uniform" in value:
        lo, hi = value["uniform"]
        return round6(rng.uniform(lo, hi)) if hi > lo else round6(lo)
    if "loguniform" in value:
        lo, hi = value["loguniform"]
        return round6(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else round6(lo)
    if "int" in value:
        lo, hi = value["int"]
        return int(rng.integers(int(lo), int(hi) + 1))
    if "odd" in value:
        choices = _odd_range(*value["odd"])
        return int(choices[int(rng.integers(len(choices)))])
    options = value["choice"]
    p = value.get("p")
    if p is None:
        index = int(rng.integers(len(options)))
    else:
        w = np.asarray(p, dtype=np.float64)
        index = int(rng.choice(len(options), p=w / w.sum()))
    return options[index]


def draw_all(rng: np.random.Generator, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Draw every key of `spec`, in sorted key order."""
    return {key: draw(rng, spec[key]) for key in sorted(spec)}


def new_seed(rng: np.random.Generator) -> int:
    """A seed for an apply-time random field (noise, particles), drawn from the sample's rng."""
    return int(rng.integers(0, 2**31 - 1))


def sampler(levels: Mapping[str, Mapping[str, Any]], seed_key: str | None = None):
    """The usual `sample_params(rng, level, spec=None)`: draw every key of the level's spec (or of
    `spec`), then, if `seed_key` is given, a seed for the apply-time random field under that name."""

    def sample_params(rng: np.random.Generator, level: str, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = draw_all(rng, spec if spec is not None else levels[level])
        if seed_key:
            params[seed_key] = new_seed(rng)
        return params

    return sample_params
