"""Helpers for tests of training runs: config overrides for the demo shards and the per-step log."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from clirun import cli as run_cli


def overrides(demo_dir, **more) -> list[str]:
    """`key=value` overrides for a fast CPU run of the demo config on the demo shards."""
    base = {"data.source": str(demo_dir), "data.crop": 64, "data.batch_size": 4, "data.num_workers": 0,
            "model.arch": "nafnet_tiny", "model.classifier_blocks": 1, "log_every": 1, "image_every": 5}
    base.update(more)
    return [f"{k}={v}" for k, v in base.items()]


def read_log(path: Path) -> dict[int, dict]:
    """step -> the row a rank logged for it."""
    steps = {}
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        if "step" in row:
            steps[row["step"]] = row
    return steps


def cli(*args: str):
    """A console script in a subprocess, one intra-op thread (no oversubscription on a shared CPU)."""
    return run_cli(*args, env={"OMP_NUM_THREADS": "1"})


class Identity(torch.nn.Module):
    """Returns its input; insists on inputs padded to a multiple of 16, as the archs do."""

    size_multiple = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 16 == 0 and x.shape[-1] % 16 == 0, x.shape
        return x
