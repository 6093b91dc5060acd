"""The degradation-classification decoder of MaskDCPT (DCPT's "no image" classifier, written from
the paper's description): ResNet-style stages with a LayerNorm over channels, fed level by level
with the backbone's taps weighted by learnable softmax-normalised scales, a global pool and a
linear layer over all 19 degradation types.

On CUDA it runs in channels-last memory format and its LayerNorms are one fused `F.layer_norm`
each over contiguous channels, with no copies (the written-out channels-first norm, 8 passes over
the full-resolution tap, was the first suspect for the classifier's cost on the H100); on the CPU
the written-out norm is the faster one and stays. Both give the same numbers to float rounding.
`model.compile_classifier` runs it through `torch.compile`."""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.archs.layers import LayerNorm2d
from uir25m import taxonomy


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 with an expanding bottleneck (2 x dim), LayerNorm after each conv, residual."""

    def __init__(self, dim: int):
        super().__init__()
        mid = 2 * dim
        self.conv1, self.norm1 = nn.Conv2d(dim, mid, 1, bias=False), LayerNorm2d(mid)
        self.conv2, self.norm2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False), LayerNorm2d(mid)
        self.conv3, self.norm3 = nn.Conv2d(mid, dim, 1, bias=False), LayerNorm2d(dim)
        for conv in (self.conv1, self.conv2, self.conv3):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        return F.relu(x + self.norm3(self.conv3(y)))


class DegradationClassifier(nn.Module):
    """logits (B x 19) from the backbone's taps (highest resolution first).

    A running feature starts at zero; at level i it adds softmax(scales)[i] x tap_i and goes through
    stage i (`blocks` bottlenecks); between levels a 1x1 conv to the next level's channels, a 2x2
    max-pool and a ReLU. Taps of backbones that keep one resolution (`downsample_taps`) are resized
    to half the previous level's size first.
    """

    def __init__(self, feature_dims: Sequence[int], *, blocks: int = 2, num_classes: int = taxonomy.NUM_CLASSES,
                 downsample_taps: bool = False):
        super().__init__()
        dims = list(feature_dims)
        self.downsample_taps = downsample_taps
        self.scales = nn.Parameter(torch.ones(len(dims)))
        self.stages = nn.ModuleList(nn.Sequential(*[Bottleneck(d) for _ in range(blocks)]) for d in dims)
        self.transitions = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in itertools.pairwise(dims))
        self.last_stage = nn.Sequential(*[Bottleneck(dims[-1]) for _ in range(blocks)])
        self.fc = nn.Linear(dims[-1], num_classes)

    def features(self, taps: Sequence[torch.Tensor]) -> torch.Tensor:
        """The pooled feature before the linear layer (what a KNN probe uses)."""
        if len(taps) != len(self.stages):
            raise ValueError(f"expected {len(self.stages)} taps, got {len(taps)}")
        w = torch.softmax(self.scales, dim=0)
        x = None
        if taps[0].is_cuda:  # channels-last: each LayerNorm one fused pass over contiguous channels
            taps = [t.contiguous(memory_format=torch.channels_last) for t in taps]
        for i, (tap, stage) in enumerate(zip(taps, self.stages)):
            if self.downsample_taps and i > 0:
                tap = F.interpolate(tap, scale_factor=0.5 ** i, mode="bilinear", align_corners=False)
            x = w[i] * tap if x is None else x + w[i] * tap
            x = stage(x)
            if i < len(self.transitions):
                x = F.relu(F.max_pool2d(self.transitions[i](x), 2))
        return self.last_stage(x).mean(dim=(-2, -1))

    def forward(self, taps: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.features(taps))
