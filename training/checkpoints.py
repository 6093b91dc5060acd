"""A restoration network from a file: our export (`export.pt` of pretraining or fine-tuning), our
run checkpoint (`last.pt`: its EMA weights when it has them, else the backbone's), or an authors'
release (BasicSR `params` / `params_ema`, Lightning `state_dict`; `arch` must then be given).
Always `torch.load(weights_only=True)`; keys are checked by `archs.load_weights`."""
from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any

import torch

from training import archs


def _backbone(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Our run checkpoint's restoration weights: EMA first, else the task's `backbone.*`."""
    if state.get("ema"):
        return {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}
    return {k.removeprefix("backbone."): v for k, v in state["model"].items() if k.startswith("backbone.")}


def read_weights(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(restoration weights, info: kind export|checkpoint|foreign, arch and arch_kwargs where the
    file names them, step)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such checkpoint") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:  # refused, not torch, truncated
        raise ValueError(f"{path}: not a readable weights-only torch checkpoint "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a mapping of weights, got {type(state).__name__}")  # noqa: TRY004 (CLI error)
    if "arch" in state and "state_dict" in state:
        return dict(state["state_dict"]), {"kind": "export", "arch": state["arch"],
                                          "arch_kwargs": dict(state.get("arch_kwargs", {})), "step": state.get("step")}
    if "model" in state and "config" in state:
        model_cfg = state["config"]["model"]
        return _backbone(state), {"kind": "checkpoint", "arch": model_cfg["arch"],
                                  "arch_kwargs": dict(model_cfg.get("kwargs", {})), "step": state.get("step")}
    return dict(state), {"kind": "foreign", "arch": None, "arch_kwargs": {}, "step": None}


def load_model(path: str | os.PathLike, *, arch: str | None = None, arch_kwargs: Mapping[str, Any] | None = None,
               device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model in eval mode on `device`, info: arch, arch_kwargs, kind, step)."""
    weights, info = read_weights(path)
    arch = arch or info["arch"]
    if arch is None:
        raise ValueError(f"{path}: not a uir25m export or checkpoint; name its architecture with --arch "
                         f"(one of {', '.join(archs.list_archs())})")
    kwargs = {**info["arch_kwargs"], **(arch_kwargs or {})}
    model = archs.create_arch(arch, **kwargs)
    try:
        archs.load_weights(model, weights)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model.to(device).eval(), {**info, "arch": arch, "arch_kwargs": kwargs}
