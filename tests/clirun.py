"""Run the console scripts as real subprocesses (test helper)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / name
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", {"uir-build": "uir25m.cli", "uir-train": "training.cli"}[name]]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
