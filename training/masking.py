"""Masking for MaskDCPT (SparK-style): a random patch mask per sample, its view at any feature
resolution, re-masking, masked pooling, and densification with learned mask tokens.

A mask is a bool tensor B x 1 x gh x gw on the patch grid, True = visible. Dense emulation of a
sparse encoder: masked positions are zero in every encoder feature (re-masked after each spatial
op), so nothing of the masked input reaches a visible position. Decoders then run dense, with the
masked positions of the features they receive filled by a learned per-level token.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import numpy as np
import torch


def random_patch_mask(batch_seeds: Sequence[int], height: int, width: int, *, patch: int = 16, ratio: float = 0.5,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """B x 1 x (H/patch) x (W/patch) bool, True = visible: exactly round(cells x (1 - ratio))
    visible cells per sample, chosen from the sample's own seed."""
    if height % patch or width % patch:
        raise ValueError(f"image {height}x{width} is not a multiple of the mask patch {patch}")
    if not 0.0 <= ratio < 1.0:
        raise ValueError("mask ratio must be in [0, 1)")
    gh, gw = height // patch, width // patch
    keep = round(gh * gw * (1.0 - ratio))
    out = np.zeros((len(batch_seeds), 1, gh * gw), dtype=bool)
    for i, seed in enumerate(batch_seeds):
        out[i, 0, np.random.default_rng(int(seed)).permutation(gh * gw)[:keep]] = True
    return torch.from_numpy(out.reshape(len(batch_seeds), 1, gh, gw)).to(device)


def at(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The mask at a feature map's (h, w): each patch cell repeated (size must be a multiple of the
    grid: the patch must be a multiple of the deepest stride)."""
    h, w = int(size[0]), int(size[1])
    gh, gw = mask.shape[-2:]
    if h % gh or w % gw:
        raise ValueError(f"feature map {h}x{w} is not a multiple of the mask grid {gh}x{gw}: "
                         "the mask patch must be a multiple of the network's deepest stride")
    if (h, w) == (gh, gw):
        return mask
    return mask.repeat_interleave(h // gh, dim=-2).repeat_interleave(w // gw, dim=-1)


def remask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the masked positions of a B x C x h x w feature (no-op without a mask)."""
    if mask is None:
        return x
    return x * at(mask, x.shape[-2:]).to(x.dtype)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Spatial mean over visible positions only: B x C x 1 x 1."""
    if mask is None:
        return x.mean(dim=(-2, -1), keepdim=True)
    m = at(mask, x.shape[-2:]).to(x.dtype)
    return (x * m).sum(dim=(-2, -1), keepdim=True) / m.sum(dim=(-2, -1), keepdim=True).clamp_min(1.0)


def densify(x: torch.Tensor, mask: torch.Tensor | None, token: torch.Tensor) -> torch.Tensor:
    """Fill the masked positions with a learned token (1 x C x 1 x 1): the encoder-to-decoder step."""
    if mask is None:
        return x
    m = at(mask, x.shape[-2:])
    return torch.where(m, x, token.to(x.dtype).expand_as(x))


BACKENDS = ("dense", "spconv")
_BACKEND: contextvars.ContextVar[str] = contextvars.ContextVar("uir_mask_backend", default="dense")


def check_backend(name: str) -> str:
    """Validate a backend name; for spconv, import it now (with the install hint), not mid-step."""
    if name not in BACKENDS:
        raise ValueError(f"unknown mask backend {name!r}; known: {', '.join(BACKENDS)}")
    if name == "spconv":
        from training import sparse_backend

        sparse_backend.load_spconv()
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the masked encoder's ungrouped convolutions inside this block with `name`: 'dense'
    (SparK-style emulation, any device, the default) or 'spconv' (submanifold convolution; needs
    spconv). Scoped to the block (and to this thread or task): nothing outside it changes."""
    token = _BACKEND.set(check_backend(name))
    try:
        yield
    finally:
        _BACKEND.reset(token)


def get_backend() -> str:
    """The backend in effect here ('dense' outside any use_backend block)."""
    return _BACKEND.get()


def conv(layer: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """A spatial convolution in the masked encoder: x is zero at masked positions and so is the
    result. The spconv backend computes it as a submanifold convolution where it can."""
    if mask is None:
        return layer(x)
    if _BACKEND.get() == "spconv":
        from training import sparse_backend

        if sparse_backend.supports(layer):
            return sparse_backend.submanifold(layer, x, at(mask, x.shape[-2:]))
    return remask(layer(x), mask)
