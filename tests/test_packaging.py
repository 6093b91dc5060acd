"""Every Python package in the source tree ships in a plain (non-editable) `pip install .`."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = {Path(d): name for name, d in config.get("package-dir", {}).items()}
    found = set()
    for top in ("uir25m", "training", "manifests"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            name = next((n + "." + ".".join(rel.relative_to(d).parts) if rel != d else n
                         for d, n in mapped.items() if rel == d or d in rel.parents), ".".join(rel.parts))
            found.add(name.rstrip("."))
    missing = sorted(found - listed)
    assert not missing, f"packages missing from pyproject's [tool.setuptools] packages: {missing}"


def test_installed_tree_has_the_loader_package():
    import training.data  # noqa: F401  (the subpackage CI once lost)
