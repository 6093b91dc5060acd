"""Restoration backbones, one file per architecture (nafnet, restormer, swinir, promptir), created
by name from a registry. Every backbone:

- `forward(x)` restores a B x 3 x H x W image (H, W multiples of `size_multiple`);
- `forward_pretrain(x, mask)` runs MaskDCPT's pretraining pass (mask: B x 1 x gh x gw bool on the
  mask patch grid, True = visible; None = no masking) and returns a dict with
  `out` (the restored image), `taps` (decoder-side features for the degradation classifier,
  highest resolution first, each level half the previous one's size unless `tap_downsample` is
  False) and `encoder` (the encoder-side features, masked, for the leak test);
- declares `feature_dims` (the taps' channels), `size_multiple`, `min_mask_patch` (its deepest
  stride), `tap_downsample` and `head_name` (the restoration head module, a conv to 3 channels:
  its input is what the KNN probe reads);
- names its learned mask tokens `mask_token*` (the export for fine-tuning drops them).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

_ARCHS: dict[str, Callable[..., torch.nn.Module]] = {}


def register_arch(fn: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
    """Register a variant under its function name; refuses duplicates."""
    name = fn.__name__
    if name in _ARCHS:
        raise ValueError(f"architecture {name!r} registered twice")
    _ARCHS[name] = fn
    return fn


def create_arch(name: str, **kwargs: Any) -> torch.nn.Module:
    """Build a registered variant; unknown names list the known ones. None kwargs are dropped, so a
    CLI default never overrides a variant's own setting."""
    if name not in _ARCHS:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHS))}")
    return _ARCHS[name](**{k: v for k, v in kwargs.items() if v is not None})


def list_archs() -> list[str]:
    return sorted(_ARCHS)


def unwrap(state_dict: Mapping[str, Any], keys: Sequence[str] = ("params_ema", "params", "state_dict")
           ) -> Mapping[str, Any]:
    """The weights inside a training file: the first of `keys` that holds a mapping (BasicSR's
    `params_ema` / `params`, Lightning's `state_dict`), else the mapping itself; a DDP `module.`
    prefix is dropped."""
    inner = next((state_dict[k] for k in keys if k in state_dict and isinstance(state_dict[k], Mapping)), state_dict)
    return {k.removeprefix("module."): v for k, v in inner.items()}


def export_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s restoration weights on the CPU, without the pretraining's mask tokens (what
    `load_weights` takes back)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if "mask_token" not in k}


def load_weights(model: torch.nn.Module, state_dict: Mapping[str, Any]) -> None:
    """Load an export or an upstream checkpoint into `model` through its architecture's
    `checkpoint_filter_fn` (renames authors' keys, unwraps `params`/`state_dict`). Only the
    pretraining mask tokens may be missing; any other missing or unexpected key is an error."""
    module = sys.modules[type(model).__module__]
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    weights = filter_fn(state_dict, model) if filter_fn else dict(state_dict)
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # a shape mismatch: name the keys, as for missing ones
        sizes = [line.strip() for line in str(e).splitlines() if "size mismatch" in line]
        raise ValueError(f"weights do not fit {type(model).__name__}: {'; '.join(sizes[:4]) or e}") from None
    missing = [k for k in result.missing_keys if "mask_token" not in k]
    if missing or result.unexpected_keys:
        raise ValueError(f"weights do not fit {type(model).__name__}: missing {missing[:8]}, "
                         f"unexpected {list(result.unexpected_keys)[:8]}")


# explicit imports register the variants (no folder scanning)
from training.archs import nafnet, promptir, restormer, swinir  # noqa: F401
