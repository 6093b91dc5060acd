"""Helpers for tests of training runs: config overrides for the demo shards and the per-step log."""
from __future__ import annotations

import json
from pathlib import Path


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
