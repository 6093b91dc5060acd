"""NAFNet: a UNet of activation-free blocks, with MaskDCPT's masked pretraining pass.

Papers:
- "Simple Baselines for Image Restoration", L. Chen, X. Chu, X. Zhang, J. Sun, ECCV 2022
  (arXiv:2204.04676).
- "Universal Image Restoration Pre-training via Masked Degradation Classification" (MaskDCPT),
  J. Hu, Z. Yao, L. Jin, Y. Chen, Y. Lu: its NAFNet ("NAFNetBaseline") is this network with the
  standard NAFBlock, width 64, enc [1, 1, 1, 28], middle 1, dec [1, 1, 1, 1].

Origin: https://github.com/megvii-research/NAFNet (basicsr/models/archs/NAFNet_arch.py; code and
released weights under the MIT licence, BasicSR parts Apache-2.0) and
https://github.com/MILab-PKU/MaskDCPT (basicsr/archs/nafnet_arch.py; no licence file in the
repository, so the licence of its weights is unknown). Written here from the papers' and repositories'
definitions; parameter names follow megvii's NAFNet (`intro`, `encoders.L.B.*`, `downs`,
`middle_blks.B.*`, `ups`, `decoders.L.B.*`, `ending`), so its released checkpoints load as they are;
`checkpoint_filter_fn` renames MaskDCPT/DCPT checkpoints (`encoders.L.blocks.B.*`, `decoderL.*`).

Masked pretraining (`forward_pretrain`, SparK-style dense emulation of a sparse encoder): the input
is masked; the intro conv, every encoder level and the bottleneck keep masked positions at zero
(re-masked around each depthwise conv and after each block and downsample; the channel attention
pools over visible positions only); at the bottleneck output and at every skip the masked positions
are filled with a learned per-level token; the decoder and the output head run dense.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training import masking
from training.archs.layers import LayerNorm2d
from training.archs import register_arch, unwrap

__all__ = ["LayerNorm2d", "NAFBlock", "NAFNet", "SimpleGate", "checkpoint_filter_fn", "nafnet_tiny", "nafnet_w32",
           "nafnet_w64"]


# ---------------------------------------------------------------------------------------------- blocks


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them (NAFNet's activation replacement)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet's block: LN -> 1x1 -> depthwise 3x3 -> SimpleGate -> simplified channel attention ->
    1x1, scaled residual (beta); LN -> 1x1 -> SimpleGate -> 1x1, scaled residual (gamma).

    `mask` (B x 1 x h x w bool at this block's resolution, True = visible) runs it sparse-emulated:
    the input must be zero at masked positions and the output is too."""

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2, drop_out_rate: float = 0.0,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        dw = c * dw_expand
        self.conv1 = nn.Conv2d(c, dw, kernel_size=1, bias=True)
        self.conv2 = nn.Conv2d(dw, dw, kernel_size=3, padding=1, groups=dw, bias=True)
        self.conv3 = nn.Conv2d(dw // 2, c, kernel_size=1, bias=True)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, kernel_size=1, bias=True))
        self.sg = SimpleGate()
        ffn = c * ffn_expand
        self.conv4 = nn.Conv2d(c, ffn, kernel_size=1, bias=True)
        self.conv5 = nn.Conv2d(ffn // 2, c, kernel_size=1, bias=True)
        self.norm1 = LayerNorm2d(c, norm_eps, contiguous=True, impl="fused")
        self.norm2 = LayerNorm2d(c, norm_eps, contiguous=True, impl="fused")
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv1(self.norm1(inp))
        if mask is None:
            x = self.sg(self.conv2(x))
            x = x * self.sca(x)
        else:  # the depthwise conv mixes positions: zero its input and output at masked positions
            x = self.sg(masking.remask(self.conv2(masking.remask(x, mask)), mask))
            x = x * self.sca[1](masking.masked_mean(x, mask))
        x = self.dropout1(self.conv3(x))
        y = inp + x * self.beta
        x = self.dropout2(self.conv5(self.sg(self.conv4(self.norm2(y)))))
        return masking.remask(y + x * self.gamma, mask)


def _run(blocks: nn.Sequential, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    for block in blocks:
        x = block(x, mask)
    return x


# ----------------------------------------------------------------------------------------------- model


class NAFNet(nn.Module):
    """NAFNet (megvii's module layout and parameter names). `forward(x)` pads H, W to a multiple of
    2**levels as the authors do and crops back; `forward_pretrain(x, mask)` is MaskDCPT's pass."""

    head_name = "ending"  # the restoration head (its input: the features the KNN probe reads)

    def __init__(self, img_channel: int = 3, width: int = 16, middle_blk_num: int = 1,
                 enc_blk_nums: Sequence[int] = (), dec_blk_nums: Sequence[int] = (), *,
                 dw_expand: int = 2, ffn_expand: int = 2, drop_out_rate: float = 0.0,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums) or not enc_blk_nums:
            raise ValueError("NAFNet needs as many decoder levels as encoder levels (at least one)")

        def blocks(chan: int, num: int) -> nn.Sequential:
            return nn.Sequential(*[NAFBlock(chan, dw_expand, ffn_expand, drop_out_rate, norm_eps) for _ in range(num)])

        self.intro = nn.Conv2d(img_channel, width, kernel_size=3, padding=1, bias=True)
        self.ending = nn.Conv2d(width, img_channel, kernel_size=3, padding=1, bias=True)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(blocks(chan, num))
            self.downs.append(nn.Conv2d(chan, 2 * chan, kernel_size=2, stride=2))
            chan *= 2
        self.middle_blks = blocks(chan, middle_blk_num)
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, kernel_size=1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(blocks(chan, num))

        levels = len(enc_blk_nums)
        self.levels = levels
        self.padder_size = 2**levels
        self.feature_dims: tuple[int, ...] = tuple(width * 2**i for i in range(levels))
        self.size_multiple = 2**levels
        self.min_mask_patch = 2**levels
        self.tap_downsample = True
        # mask tokens: one per skip level (0 = full resolution) and one for the bottleneck (`levels`)
        for i in range(levels + 1):
            setattr(self, f"mask_token_{i}", nn.Parameter(torch.zeros(1, width * 2**i, 1, 1)))

    def check_image_size(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad H, W on the bottom/right to a multiple of 2**levels (the authors' padding)."""
        h, w = x.shape[-2:]
        ph = (self.padder_size - h % self.padder_size) % self.padder_size
        pw = (self.padder_size - w % self.padder_size) % self.padder_size
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def _unet(self, inp: torch.Tensor, mask: torch.Tensor | None
              ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """(output, decoder level outputs deepest first, encoder features incl. bottleneck)."""
        m = None if mask is None else masking.at(mask, inp.shape[-2:])
        inp = masking.remask(inp, m)
        x = masking.conv(self.intro, inp, m)
        encs: list[torch.Tensor] = []
        for encoder, down in zip(self.encoders, self.downs):
            x = _run(encoder, x, m)
            encs.append(x)
            x = down(x)
            m = None if mask is None else masking.at(mask, x.shape[-2:])
            x = masking.remask(x, m)
        x = _run(self.middle_blks, x, m)
        encs.append(x)
        x = masking.densify(x, mask, getattr(self, f"mask_token_{self.levels}"))
        decs: list[torch.Tensor] = []
        for i, (decoder, up) in enumerate(zip(self.decoders, self.ups)):
            lvl = self.levels - 1 - i
            skip = masking.densify(encs[lvl], mask, getattr(self, f"mask_token_{lvl}"))
            x = _run(decoder, up(x) + skip, None)
            decs.append(x)
        return self.ending(x) + inp, decs, encs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out, _, _ = self._unet(self.check_image_size(x), None)
        return out[:, :, :h, :w]

    def forward_pretrain(self, x: torch.Tensor, mask: torch.Tensor | None) -> dict[str, Any]:
        """MaskDCPT's pass (mask: B x 1 x gh x gw bool, True = visible; None = dense). Returns
        `out`, `taps` (decoder level outputs, highest resolution first) and `encoder` (encoder level
        outputs and the bottleneck, before densify: zero at masked positions)."""
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"input {h}x{w} is not a multiple of {self.size_multiple}")
        out, decs, encs = self._unet(x, mask)
        return {"out": out, "taps": decs[::-1], "encoder": encs}


# ------------------------------------------------------------------------------------ foreign weights


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None
                         ) -> dict[str, torch.Tensor]:
    """Rename an upstream checkpoint to our keys. Accepts a BasicSR file (`params_ema` preferred,
    else `params`), a DDP `module.` prefix, megvii's keys (unchanged) and MaskDCPT/DCPT's
    (`encoders.L.blocks.B.*`, `middle_blks.blocks.B.*`, `decoderL.[blocks.]B.*`)."""
    state_dict = unwrap(state_dict)
    out: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        k = re.sub(r"^(encoders\.\d+|middle_blks)\.blocks\.", r"\1.", k)
        k = re.sub(r"^decoder(\d+)\.(?:blocks\.)?", r"decoders.\1.", k)
        out[k] = v
    return out


def _create_nafnet(cfg: dict[str, Any], kwargs: dict[str, Any]) -> NAFNet:
    return NAFNet(**{**cfg, **kwargs})


# ------------------------------------------------------------------------------------------- variants


@register_arch
def nafnet_w64(**kwargs: Any) -> NAFNet:
    """MaskDCPT's NAFNet ("NAFNetBaseline", = megvii's GoPro-width64 layout): 67,888,835 parameters
    without the mask tokens."""
    cfg = {"width": 64, "enc_blk_nums": (1, 1, 1, 28), "middle_blk_num": 1, "dec_blk_nums": (1, 1, 1, 1),
           "norm_eps": 1e-5}
    return _create_nafnet(cfg, kwargs)


@register_arch
def nafnet_w32(**kwargs: Any) -> NAFNet:
    """The NAFNet paper's SIDD width-32 model: 29,159,715 parameters without the mask tokens."""
    cfg = {"width": 32, "enc_blk_nums": (2, 2, 4, 8), "middle_blk_num": 12, "dec_blk_nums": (2, 2, 2, 2)}
    return _create_nafnet(cfg, kwargs)


@register_arch
def nafnet_tiny(**kwargs: Any) -> NAFNet:
    """Four levels of width 4 (for tests): 75,887 parameters without the mask tokens."""
    cfg = {"width": 4, "enc_blk_nums": (1, 1, 1, 1), "middle_blk_num": 1, "dec_blk_nums": (1, 1, 1, 1)}
    return _create_nafnet(cfg, kwargs)
