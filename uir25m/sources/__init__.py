"""Where clean and degraded inputs come from: records of source files relative to a source root.

Modules: embedded (the colour sample images shipped inside scikit-image, for the demo).
Layout adapters for public datasets (parallel folders, name rules, list files, nested scenes,
multi-type folders) join this package with the source manifests.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CleanImage:
    """A clean source file that synthetic types degrade."""

    source: str  # source name (see manifest.check_source)
    root: str  # absolute path of the source root
    relpath: str  # POSIX path relative to the root
    partition: str  # train | test
    width: int
    height: int
