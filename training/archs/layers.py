"""Layers shared by the architectures and the MaskDCPT classifier."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a B x C x H x W map, at every position.

    `fused` (default on CUDA): one `F.layer_norm` over the channels-last view, no copy when the
    input is channels-last (the classifier's are on a GPU); the output keeps channels-last strides
    unless `contiguous`. `explicit` (default on the CPU, where it is the faster of the two): mean
    and variance over dim 1 written out. Both compute the same to float rounding. megvii's NAFNet
    uses eps 1e-6, MaskDCPT's NAFNetBaseline nn.LayerNorm's 1e-5; parameters `weight`, `bias`.
    """

    IMPLS = ("auto", "fused", "explicit")

    def __init__(self, channels: int, eps: float = 1e-6, contiguous: bool = False, impl: str = "auto") -> None:
        super().__init__()
        if impl not in self.IMPLS:
            raise ValueError(f"impl must be one of {self.IMPLS}")
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps, self.contiguous, self.impl = eps, contiguous, impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "explicit" or (self.impl == "auto" and not x.is_cuda):
            mu = x.mean(1, keepdim=True)
            var = (x - mu).pow(2).mean(1, keepdim=True)
            return (x - mu) / torch.sqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps).permute(0, 3, 1, 2)
        return y.contiguous() if self.contiguous else y
