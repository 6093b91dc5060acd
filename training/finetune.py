"""The fine-tuning task: all-in-one restoration from a MaskDCPT export (or from scratch), L1 against
the clean target. The mask tokens of the pretraining pass are frozen (a dense forward never uses
them), so DDP needs no unused-parameter search."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from training import archs, checkpoints, losses
from training.config import TrainConfig


def load_init(backbone: nn.Module, cfg: TrainConfig) -> dict[str, Any]:
    """Load `cfg.init` into the backbone: every weight must fit (only mask tokens may be missing);
    an export or checkpoint of another architecture is refused by name."""
    weights, info = checkpoints.read_weights(cfg.init)
    if info["arch"] is not None and (info["arch"], info["arch_kwargs"]) != (cfg.model.arch, dict(cfg.model.kwargs)):
        def name(arch: str, kwargs: dict) -> str:
            return f"{arch} {kwargs}" if kwargs else arch

        raise ValueError(f"{cfg.init}: holds {name(info['arch'], info['arch_kwargs'])}, but the config trains "
                         f"{name(cfg.model.arch, dict(cfg.model.kwargs))}: set model.arch / model.kwargs to match")
    try:
        archs.load_weights(backbone, weights)
    except ValueError as e:
        raise ValueError(f"{cfg.init}: {e}") from None
    return info


class Restoration(nn.Module):
    """Backbone; `forward(batch, step, rank)` returns loss (= L1), l1, psnr (of the batch, clamped)."""

    log_keys = ("loss", "l1", "psnr")

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = archs.create_arch(cfg.model.arch, **cfg.model.kwargs)
        self.init_info = load_init(self.backbone, cfg) if cfg.init else None
        for name, p in self.backbone.named_parameters():
            if "mask_token" in name:
                p.requires_grad_(False)

    def param_groups(self) -> list[dict[str, Any]]:
        params = [p for p in self.backbone.parameters() if p.requires_grad]
        return [{"params": params, "lr": self.cfg.optim.lr, "name": "restoration"}]

    def forward(self, batch: dict[str, Any], step: int, rank: int = 0) -> dict[str, torch.Tensor]:
        x, gt = batch["lq"], batch["gt"]
        mult = self.backbone.size_multiple
        if x.shape[-2] % mult or x.shape[-1] % mult:
            raise ValueError(f"crops of {tuple(x.shape[-2:])} must be multiples of {mult} for {self.cfg.model.arch}")
        out = self.backbone(x)
        l1 = losses.l1(out.float(), gt)
        with torch.no_grad():
            mse = (out.float().clamp(0, 1) - gt).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
            psnr = (-10.0 * torch.log10(mse)).mean()
        return {"loss": l1, "l1": l1.detach(), "psnr": psnr, "out": out.detach()}

    def export(self, backbone: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """The restoration weights (of `backbone`, e.g. the EMA copy, when given), no mask tokens."""
        return archs.export_weights(backbone if backbone is not None else self.backbone)
