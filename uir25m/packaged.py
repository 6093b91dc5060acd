"""The YAML shipped with the package (manifests/ in the repository, `uir25m.manifests` once
installed): list and read it with importlib.resources, so a non-editable install works."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

KINDS = ("recipes", "subsets", "sources")


def _folder(kind: str):
    if kind not in KINDS:
        raise ValueError(f"unknown manifest kind {kind!r}; one of {', '.join(KINDS)}")
    try:
        return resources.files("uir25m.manifests").joinpath(kind)
    except ModuleNotFoundError:  # running from a source checkout that was never installed
        checkout = Path(__file__).resolve().parents[1] / "manifests"
        if not checkout.is_dir():
            raise
        return checkout / kind


def names(kind: str) -> tuple[str, ...]:
    """Names (file stems) of the packaged manifests of one kind, sorted."""
    folder = _folder(kind)
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def load(kind: str, name: str) -> dict[str, Any]:
    """Parse one packaged manifest; a clear error lists the available names otherwise."""
    path = _folder(kind).joinpath(f"{name}.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"no packaged {kind[:-1]} {name!r}; available: {', '.join(names(kind)) or 'none'}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{kind}/{name}.yaml: expected a mapping at the top level")
    return data
