"""Losses of MaskDCPT: L1 over the whole image and focal loss on the degradation classifier."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def l1(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (out - target).abs().mean()


def restrict(logits: torch.Tensor, classes: Sequence[int] | None) -> torch.Tensor:
    """Logits of classes outside `classes` pushed to -inf: a run on a subset trains the 19-way head
    on its own classes only."""
    if classes is None:
        return logits
    keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    keep[list(classes)] = True
    return logits.masked_fill(~keep, float("-inf"))


def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): mean of -(1 - p_t)^gamma log p_t."""
    logp = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).squeeze(1)
    return (-(1.0 - logp.exp()).pow(gamma) * logp).mean()
