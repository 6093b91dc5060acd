"""The MaskDCPT task: a batch in, a dict of losses out. Masked restoration (L1 over the whole
image against the clean target) plus degradation classification from the decoder-side taps
(focal loss over the 19 types, restricted to the subset's classes): L = L1 + lambda x focal."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from training import archs, losses, masking
from training.config import TrainConfig
from training.heads import DegradationClassifier


def mask_seeds(seed: int, step: int, rank: int, batch: int) -> list[int]:
    """Per-sample mask seeds: a function of (seed, step, rank, index), so a resumed run masks alike."""
    return [int.from_bytes(hashlib.sha256(f"{seed}:{step}:{rank}:{i}".encode()).digest()[:8], "little") >> 1
            for i in range(batch)]


class MaskDCPT(nn.Module):
    """Backbone + degradation classifier; `forward(batch, step, rank)` returns loss, l1, focal, logits, acc."""

    log_keys = ("loss", "l1", "focal", "acc")

    def __init__(self, cfg: TrainConfig, classes: Sequence[int] | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = archs.create_arch(cfg.model.arch, **cfg.model.kwargs)
        if cfg.mask_ratio > 0 and cfg.mask_patch % self.backbone.min_mask_patch:
            raise ValueError(f"mask_patch {cfg.mask_patch} must be a multiple of {cfg.model.arch}'s deepest stride "
                             f"({self.backbone.min_mask_patch})")
        self.classifier = DegradationClassifier(self.backbone.feature_dims, blocks=cfg.model.classifier_blocks,
                                                downsample_taps=not self.backbone.tap_downsample)
        self.classes = sorted(classes) if classes else None
        self.mask_backend = masking.check_backend(cfg.mask_backend)
        # compiled beside the module, not registered as one: the state dict keeps the module's own names
        object.__setattr__(self, "_classify", torch.compile(self.classifier) if cfg.model.compile_classifier
                           else self.classifier)

    def param_groups(self) -> list[dict[str, Any]]:
        o = self.cfg.optim
        return [{"params": list(self.backbone.parameters()), "lr": o.lr, "name": "restoration"},
                {"params": list(self.classifier.parameters()), "lr": o.lr_classifier, "name": "classifier"}]

    def forward(self, batch: dict[str, Any], step: int, rank: int = 0) -> dict[str, torch.Tensor]:
        x, gt, target = batch["lq"], batch["gt"], batch["class_id"]
        b, _, h, w = x.shape
        mult = max(self.backbone.size_multiple, self.cfg.mask_patch if self.cfg.mask_ratio > 0 else 1)
        if h % mult or w % mult:
            raise ValueError(f"crops of {h}x{w} must be multiples of {mult} for {self.cfg.model.arch} and the mask patch")
        mask = None
        if self.cfg.mask_ratio > 0:
            mask = masking.random_patch_mask(mask_seeds(self.cfg.seed, step, rank, b), h, w,
                                             patch=self.cfg.mask_patch, ratio=self.cfg.mask_ratio, device=x.device)
        with masking.use_backend(self.mask_backend):
            res = self.backbone.forward_pretrain(x, mask)
        logits = losses.restrict(self._classify(res["taps"]).float(), self.classes)
        l1 = losses.l1(res["out"].float(), gt)
        focal = losses.focal(logits, target, self.cfg.focal_gamma)
        acc = (logits.argmax(-1) == target).float().mean()
        return {"loss": l1 + self.cfg.focal_weight * focal, "l1": l1.detach(), "focal": focal.detach(),
                "acc": acc.detach(), "logits": logits.detach(), "out": res["out"].detach(), "mask": mask}

    def export(self, backbone: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """The restoration network's weights for fine-tuning (of `backbone`, e.g. the EMA copy, when
        given): no mask tokens, no classifier."""
        return archs.export_weights(backbone if backbone is not None else self.backbone)
