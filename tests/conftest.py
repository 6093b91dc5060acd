"""Shared fixtures: small demo builds (real tars and parquet) made once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from uir25m import build, demo

SMALL = demo.DemoSettings(per_type=2, test_per_type=1, size=64, seed=7)


def build_demo(out: Path, settings: demo.DemoSettings = SMALL, workers: int = 1) -> dict:
    return build.run_build(demo.plan(settings), out, workers=workers, mode="overwrite", progress=False, strict=True)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A small demo build: 19 types x (2 train + 1 test) pairs of 64 x 64 tiles."""
    out = tmp_path_factory.mktemp("demo") / "ds"
    build_demo(out)
    return out


@pytest.fixture(scope="session")
def small():
    """The settings of `demo_dir`."""
    return SMALL


@pytest.fixture(scope="session")
def make_demo():
    """build_demo(out, settings=SMALL, workers=1) -> summary."""
    return build_demo


def files_of(root: Path) -> dict[str, bytes]:
    """Every file of a build but build.json (it records times and versions)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*")) if p.is_file() and p.name != "build.json"
    }


@pytest.fixture(scope="session")
def files():
    return files_of


@pytest.fixture(autouse=True)
def _no_crash_env(monkeypatch, tmp_path_factory):
    monkeypatch.delenv("UIR_CRASH_AT", raising=False)
    # the loader's default shard cache lives under the user's cache directory: not in tests
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    yield


import sys  # noqa: E402

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent / "uir25m")]  # helpers: clirun, trees


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server on loopback (`rclone serve s3`, objects on disk under a temp folder)."""
    from servers import S3Server

    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture()
def fake_hub():
    """A loopback fake Hub speaking the legacy LFS upload protocol (contract tests only)."""
    from servers import FakeHub

    with FakeHub() as hub:
        yield hub
