"""One-way imports along the data path (DESIGN §1, STYLE 'Our layout'), checked on the source."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the format side: what training may import. The degradation engine (pure functions) and the codec
# are on it since online samples (format 1.2) are made in the loader; the builder's internals
# (planner, shards, executors, build) are not.
ALLOWED_FROM_TRAINING = {"uir25m", "uir25m.atomic", "uir25m.taxonomy", "uir25m.manifest", "uir25m.reader", "uir25m.subsets",
                         "uir25m.degrade", "uir25m.codec", "uir25m.packaged"}
# builder modules each may import only modules listed before them
BUILDER_ORDER = ["atomic", "taxonomy", "packaged", "codec", "manifest", "reader", "degrade", "sources", "catalog", "recipes",
                 "tarwriter", "shards", "executors", "build", "estimate", "planner", "demo", "subsets", "stats",
                 "card", "subsetting", "publish", "preview", "verify", "cli"]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def modules(pkg: str):
    return sorted((ROOT / pkg).rglob("*.py"))


def owner(path: Path) -> str:
    rel = path.relative_to(ROOT / "uir25m").with_suffix("")
    return rel.parts[0] if rel.parts[0] != "__init__" else "__init__"


@pytest.mark.parametrize("path", modules("uir25m"), ids=lambda p: str(p.relative_to(ROOT)))
def test_builder_never_imports_training_and_imports_flow_one_way(path):
    found = imports(path)
    assert not any(m == "training" or m.startswith("training.") for m in found)
    me = owner(path)
    if me == "__init__":
        return
    for m in found:
        if not m.startswith("uir25m."):
            continue
        target = m.split(".")[1]
        if target in ("__version__",) or target == me:
            continue
        if target in BUILDER_ORDER and me in BUILDER_ORDER:
            assert BUILDER_ORDER.index(target) < BUILDER_ORDER.index(me), f"{me} imports {target}: against the data path"
        assert target != "cli", f"{me} imports the cli"


@pytest.mark.parametrize("path", modules("training"), ids=lambda p: str(p.relative_to(ROOT)))
def test_training_imports_only_the_format_side(path):
    for m in imports(path):
        if m == "uir25m" or m.startswith("uir25m."):
            top = ".".join(m.split(".")[:2])
            assert top in ALLOWED_FROM_TRAINING, f"{path.name} imports {m}"


@pytest.mark.parametrize("top", sorted(ALLOWED_FROM_TRAINING - {"uir25m"}))
def test_the_format_side_imports_only_the_format_side(top):
    """Closed under imports: a format-side module never pulls in a builder internal."""
    name = top.split(".")[1]
    paths = [ROOT / "uir25m" / f"{name}.py"] if (ROOT / "uir25m" / f"{name}.py").is_file() else modules(f"uir25m/{name}")
    for path in paths:
        for m in imports(path):
            if m.startswith("uir25m."):
                target = ".".join(m.split(".")[:2])
                assert target in ALLOWED_FROM_TRAINING or target == top or m.endswith("__version__"), \
                    f"{path.relative_to(ROOT)} imports {m}"
