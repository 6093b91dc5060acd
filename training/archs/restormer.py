"""Restormer: a UNet of transposed-attention transformer blocks, with MaskDCPT's masked pass.

Paper: "Restormer: Efficient Transformer for High-Resolution Image Restoration", Zamir, Arora,
Khan, Hayat, Khan, Yang, CVPR 2022 (https://arxiv.org/abs/2111.09881).
Origin: https://github.com/swz30/Restormer (`basicsr/models/archs/restormer_arch.py`); module and
parameter names follow it, so its checkpoints load directly (after unwrapping `params`).
MaskDCPT's Restormer (https://github.com/MILab-PKU/MaskDCPT, `basicsr/archs/restormer_arch.py`) is
the same network with other key names; `checkpoint_filter_fn` maps them.
Weights: swz30/Restormer's LICENSE.md is, as recalled (not re-checked here), the ACADEMIC PUBLIC
LICENSE (non-commercial research use); no licence file was found for MaskDCPT. Check before use.

Masked pretraining (`forward_pretrain`, SparK-style dense emulation, DESIGN §7): the input, the patch
embedding, the three encoder levels and the latent run masked (every kernel > 1 conv reads a zeroed
input and its output is re-masked; per-pixel LayerNorms are re-masked). MDTA attends across
channels: its C x C map sums q k^T over positions, so masked positions (zero in q, k, v) add nothing
and its output stays zero there. 1x1 convs re-mask only when they have a bias (zeros stay zeros). The latent and each skip are densified with a learned per-level
token; the decoder, refinement and output head run dense.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training import masking
from training.archs import register_arch, unwrap

__all__ = ["Restormer", "checkpoint_filter_fn", "restormer_base", "restormer_tiny"]

Mask = torch.Tensor | None


def _remask_pointwise(conv: nn.Conv2d, x: torch.Tensor, mask: Mask) -> torch.Tensor:
    """A 1x1 conv maps zeros to zeros unless it has a bias: re-mask only then."""
    y = conv(x)
    return masking.remask(y, mask) if conv.bias is not None else y


# --------------------------------------------------------------------------------------- blocks
class _WithBiasNorm(nn.Module):
    """LayerNorm over the last dim (weight and bias), eps 1e-5, biased variance."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, 1e-5)


class _BiasFreeNorm(nn.Module):
    """Scale-only norm over the last dim: x / sqrt(var + 1e-5) * weight (no mean removal)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * self.weight


class LayerNorm(nn.Module):
    """Per-pixel channel norm of a B x C x H x W map ('WithBias' or 'BiasFree'), parameters under `body`."""

    def __init__(self, dim: int, LayerNorm_type: str = "WithBias") -> None:
        super().__init__()
        if LayerNorm_type not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm_type must be 'WithBias' or 'BiasFree', not {LayerNorm_type!r}")
        self.body = _BiasFreeNorm(dim) if LayerNorm_type == "BiasFree" else _WithBiasNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class FeedForward(nn.Module):
    """Gated-Dconv feed-forward network (GDFN): 1x1 -> depthwise 3x3 -> GELU gate -> 1x1."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor, mask: Mask = None) -> torch.Tensor:
        x = _remask_pointwise(self.project_in, x, mask)
        x1, x2 = masking.remask(self.dwconv(x), mask).chunk(2, dim=1)
        return _remask_pointwise(self.project_out, F.gelu(x1) * x2, mask)  # gelu(0) * 0 = 0


class Attention(nn.Module):
    """Multi-Dconv head transposed attention (MDTA): attention across channels, per head."""

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"{dim} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor, mask: Mask = None) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = masking.remask(self.qkv_dwconv(_remask_pointwise(self.qkv, x, mask)), mask)
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in qkv.chunk(3, dim=1))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return _remask_pointwise(self.project_out, (attn @ v).reshape(b, c, h, w), mask)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + MDTA(norm1(x)), then x + GDFN(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool,
                 LayerNorm_type: str) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor, mask: Mask = None) -> torch.Tensor:
        x = x + self.attn(masking.remask(self.norm1(x), mask), mask)
        return x + self.ffn(masking.remask(self.norm2(x), mask), mask)


class OverlapPatchEmbed(nn.Module):
    """3x3 conv embedding (overlapping patches)."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor, mask: Mask = None) -> torch.Tensor:
        return masking.conv(self.proj, x, mask)


class Downsample(nn.Module):
    """3x3 conv halving the channels, then pixel-unshuffle (x2 channels overall, half resolution)."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat // 2, kernel_size=3, padding=1, bias=False),
                                  nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor, mask: Mask = None) -> torch.Tensor:
        conv, unshuffle = self.body
        # every 2 x 2 cell lies inside one mask patch (patch is a multiple of the deepest stride)
        # and masking.conv leaves masked positions zero (no bias): no re-mask needed after the shuffle
        return unshuffle(masking.conv(conv, x, mask))


class Upsample(nn.Module):
    """3x3 conv doubling the channels, then pixel-shuffle (half the channels, double resolution)."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat * 2, kernel_size=3, padding=1, bias=False),
                                  nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, mask: Mask = None) -> torch.Tensor:
    """Run a level's blocks, each with the mask (None: dense)."""
    for blk in blocks:
        x = blk(x, mask)
    return x


# ---------------------------------------------------------------------------------------- model
class Restormer(nn.Module):
    """Restormer (swz30/Restormer definition) with MaskDCPT's masked pretraining pass.

    Args (authors' names): dim = level-1 width (levels double it); num_blocks = blocks per level
    (encoder levels 1-3 and latent; decoder levels reuse the first three); heads per level;
    LayerNorm_type 'WithBias' or 'BiasFree'; dual_pixel_task adds the 1x1 skip conv (inp_channels 6).
    """

    size_multiple = 8  # three 2x downsamplings
    head_name = "output"  # the restoration head (its input: the features the KNN probe reads)
    min_mask_patch = 8  # deepest stride
    tap_downsample = True

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = "WithBias", dual_pixel_task: bool = False) -> None:
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError("num_blocks and heads need 4 entries (3 encoder levels + latent)")

        def level(width: int, n_heads: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(width, n_heads, ffn_expansion_factor, bias, LayerNorm_type)
                                   for _ in range(n)])

        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = level(d1, heads[0], num_blocks[0])
        self.down1_2 = Downsample(d1)
        self.encoder_level2 = level(d2, heads[1], num_blocks[1])
        self.down2_3 = Downsample(d2)
        self.encoder_level3 = level(d3, heads[2], num_blocks[2])
        self.down3_4 = Downsample(d3)
        self.latent = level(d4, heads[3], num_blocks[3])

        self.up4_3 = Upsample(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, kernel_size=1, bias=bias)
        self.decoder_level3 = level(d3, heads[2], num_blocks[2])
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, kernel_size=1, bias=bias)
        self.decoder_level2 = level(d2, heads[1], num_blocks[1])
        self.up2_1 = Upsample(d2)  # no channel reduction at level 1: the decoder works at 2 * dim
        self.decoder_level1 = level(d2, heads[0], num_blocks[0])
        self.refinement = level(d2, heads[0], num_refinement_blocks)

        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, d2, kernel_size=1, bias=bias)
        self.output = nn.Conv2d(d2, out_channels, kernel_size=3, padding=1, bias=bias)

        # MaskDCPT: one learned token per encoder level (skips 1-3, latent 4); unused when dense
        for i, c in enumerate((d1, d2, d3, d4), start=1):
            setattr(self, f"mask_token_{i}", nn.Parameter(torch.zeros(1, c, 1, 1)))
        self.feature_dims = [d2, d2, d3]  # decoder_level1, decoder_level2, decoder_level3 outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore a B x C x H x W image (H, W multiples of 8)."""
        return self._forward(x, None)["out"]

    def forward_pretrain(self, x: torch.Tensor, mask: Mask) -> dict[str, Any]:
        """MaskDCPT pass: masked encoder, densified skips and latent, dense decoder.

        Returns `out` (image), `taps` (decoder level 1, 2, 3 outputs: H, H/2, H/4) and `encoder`
        (level 1-3 outputs and latent, masked, before densification)."""
        return self._forward(x, mask)

    def _forward(self, x: torch.Tensor, mask: Mask) -> dict[str, Any]:
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f"input {tuple(x.shape[-2:])} is not a multiple of {self.size_multiple}")
        inp = masking.remask(x, mask)

        emb = self.patch_embed(inp, mask)
        enc1 = run_blocks(self.encoder_level1, emb, mask)
        enc2 = run_blocks(self.encoder_level2, self.down1_2(enc1, mask), mask)
        enc3 = run_blocks(self.encoder_level3, self.down2_3(enc2, mask), mask)
        lat = run_blocks(self.latent, self.down3_4(enc3, mask), mask)
        encoder = [enc1, enc2, enc3, lat]

        skip1 = masking.densify(enc1, mask, self.mask_token_1)
        skip2 = masking.densify(enc2, mask, self.mask_token_2)
        skip3 = masking.densify(enc3, mask, self.mask_token_3)
        lat = masking.densify(lat, mask, self.mask_token_4)

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), skip3], 1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), skip2], 1)))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), skip1], 1))
        out = self.refinement(dec1)
        if self.dual_pixel_task:
            out = self.output(out + self.skip_conv(masking.densify(emb, mask, self.mask_token_1)))
        else:
            out = self.output(out) + inp
        return {"out": out, "taps": [dec1, dec2, dec3], "encoder": encoder}


# ------------------------------------------------------------------------------- foreign weights
_LEVELS = "encoder_level1|encoder_level2|encoder_level3|latent|decoder_level1|decoder_level2|decoder_level3|refinement"


def maskdcpt_key(key: str) -> str:
    """A key of MaskDCPT's Restormer-style modules (`<level>.blocks.N.`, `normK.weight` on a plain
    nn.LayerNorm, `downX_Y.conv` / `upX_Y.conv`) as swz30's; other keys unchanged."""
    key = re.sub(rf"^({_LEVELS})\.blocks\.(\d+)\.", r"\1.\2.", key)
    key = re.sub(r"\.(norm[12])\.(weight|bias)$", r".\1.body.\2", key)
    return re.sub(r"^((?:down|up)\d_\d)\.conv\.", r"\1.body.0.", key)


def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: Restormer | None = None) -> dict[str, torch.Tensor]:
    """Map an official checkpoint to our keys: unwraps BasicSR's `params_ema` / `params`; swz30 keys
    pass unchanged; keys of MaskDCPT's `Restormer` (`<level>.blocks.N.`, `normK.weight` directly on
    an nn.LayerNorm, `downX_Y.conv` / `upX_Y.conv`) are renamed to swz30's."""
    state_dict = unwrap(state_dict)
    out = {maskdcpt_key(k): v for k, v in state_dict.items()}
    if model is not None:  # keep our mask tokens so a strict load of a dense checkpoint works
        for k, v in model.state_dict().items():
            if k.startswith("mask_token") and k not in out:
                out[k] = v
    return out


# -------------------------------------------------------------------------------------- variants
def _create(variant: dict[str, Any], kwargs: dict[str, Any]) -> Restormer:
    return Restormer(**{**variant, **kwargs})


@register_arch
def restormer_base(**kwargs: Any) -> Restormer:
    """The paper's Restormer (26.13M parameters), as MaskDCPT tests it."""
    return _create({"dim": 48, "num_blocks": (4, 6, 6, 8), "num_refinement_blocks": 4, "heads": (1, 2, 4, 8),
                    "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias",
                    "dual_pixel_task": False}, kwargs)


@register_arch
def restormer_tiny(**kwargs: Any) -> Restormer:
    """A ~56k-parameter Restormer (dim 4, one block per level) for tests."""
    return _create({"dim": 4, "num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1, "heads": (1, 2, 2, 4),
                    "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias"}, kwargs)
