"""The degradation registry: taxonomy code -> (levels, sample_params, apply)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uir25m import taxonomy

SampleFn = Callable[..., dict[str, Any]]
ApplyFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Degradation:
    """One registered type: named levels (default parameter distributions) and two functions.

    `sample_params(rng, level, spec=None)` draws a JSON-able parameter dict from the level's
    distributions (or `spec`, a recipe's override); `apply(image, **params)` is pure: the same
    image and params give the same pixels.
    """

    code: str
    levels: Mapping[str, Mapping[str, Any]]
    sample_params: SampleFn
    apply: ApplyFn
    default_level: str = field(default="")

    def spec(self, level: str, override: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The distribution spec of `level`, with a recipe's overrides merged over it."""
        if level not in self.levels:
            raise KeyError(
                f"type {self.code!r} has no level {level!r}; levels: {', '.join(self.levels)}"
            )
        merged = dict(self.levels[level])
        merged.update(override or {})
        return merged


_REGISTRY: dict[str, Degradation] = {}


def register(
    code: str,
    *,
    levels: Mapping[str, Mapping[str, Any]],
    sample_params: SampleFn,
    apply: ApplyFn,
    default_level: str | None = None,
) -> Degradation:
    """Register a type; refuses codes outside the taxonomy and duplicates."""
    taxonomy.get(code)
    if code in _REGISTRY:
        raise ValueError(f"degradation {code!r} is registered twice")
    if not levels:
        raise ValueError(f"degradation {code!r} has no levels")
    entry = Degradation(code, dict(levels), sample_params, apply, default_level or next(iter(levels)))
    _REGISTRY[code] = entry
    return entry


def get(code: str) -> Degradation:
    """The registered degradation for `code`."""
    taxonomy.get(code)
    try:
        return _REGISTRY[code]
    except KeyError:
        raise KeyError(f"degradation {code!r} is in the taxonomy but not registered") from None


def codes() -> tuple[str, ...]:
    """Registered codes, in class-id order."""
    return tuple(c for c in taxonomy.CODES if c in _REGISTRY)
