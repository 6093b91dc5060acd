"""PromptIR: a Restormer UNet whose decoder is conditioned by learned prompts, with MaskDCPT's masked pass.

Paper: "PromptIR: Prompting for All-in-One Blind Image Restoration", Potlapalli, Zamir, Khan, Khan,
NeurIPS 2023 (https://arxiv.org/abs/2306.13090).
Origin: https://github.com/va1shn9v/PromptIR (`net/model.py`, trained as `PromptIR(decoder=True)`);
module and parameter names follow it, so its Lightning checkpoint loads after `checkpoint_filter_fn`
(which drops the `net.` prefix). DCPT / MaskDCPT (https://github.com/MILab-PKU/dcpt,
https://github.com/MILab-PKU/MaskDCPT) use the same network.
Weights: va1shn9v/PromptIR releases code and weights under its ACADEMIC PUBLIC LICENSE
(non-commercial use only); MaskDCPT's weights come without a stated licence — check before use.

Structure (dim 48): encoder levels of 48/96/192 channels and a 384-channel latent (Restormer blocks,
imported from `restormer`:
MDTA transposed attention + GDFN); the decoder inserts a prompt block after the latent and after
decoder levels 3 and 2: `promptK` (prompt components mixed by softmax weights of the pooled
feature, resized, 3x3 conv) is concatenated, `noise_levelK` (a transformer block over the
concatenation) and `reduce_noise_levelK` (1x1) bring it back. Authors' quirks kept on purpose:
the decoder works at 2*dim from level 3 on (`reduce_noise_level3` -> 4*dim, `up4_3` from 4*dim);
`chnl_reduce1..3` and `reduce_noise_channel_1..3` are defined but never used in the forward (kept
for checkpoint keys and the parameter count, frozen here so DDP needs no find_unused_parameters);
`decoder=False` crashes in the authors' code (`up4_3` then gets 8*dim channels) and is refused here.

Masked pretraining (`forward_pretrain`, SparK-style dense emulation, DESIGN §7): the input, the patch
embedding, encoder levels 1-3, the downsamplings and the latent run masked — per-pixel LayerNorm
outputs are re-masked, every 3x3 / depthwise conv reads a zeroed input and its output is re-masked,
1x1 convs without bias keep zeros (re-masked only if they have a bias). MDTA attends across channels:
its C x C map sums q k^T over positions, so masked positions (zero in q, k, v) add nothing and its
output stays zero there. The latent and the three skips are densified with learned per-level tokens
(`mask_token_1..4`); the prompt blocks, decoder, refinement and output head run dense. The
classifier taps (as DCPT hooks them, `hook_names: reduce_noise_level`, reversed to highest
resolution first) are the outputs of `reduce_noise_level1, 2, 3`: 2*dim at H/2, 4*dim at H/4,
4*dim at H/8 ([96, 192, 192] for dim 48).
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
from training.archs.restormer import (
    Downsample,
    OverlapPatchEmbed,
    TransformerBlock,
    Upsample,
    maskdcpt_key,
    run_blocks,
)

__all__ = ["PromptIR", "checkpoint_filter_fn", "promptir_base", "promptir_tiny"]

Mask = torch.Tensor | None


# --------------------------------------------------------------------------------------- blocks
class PromptGenBlock(nn.Module):
    """Prompt generation: softmax weights from the spatially pooled feature mix `prompt_len` learned
    prompt_dim x prompt_size x prompt_size components; the mix is resized bilinearly to the feature's
    size and passed through a 3x3 conv. (Decoder-side: runs dense.)"""

    def __init__(self, prompt_dim: int = 128, prompt_len: int = 5, prompt_size: int = 96, lin_dim: int = 192) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # B x prompt_len
        prompt = torch.einsum("bl,lchw->bchw", weights, self.prompt_param[0])
        prompt = F.interpolate(prompt, x.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv3x3(prompt)


# ---------------------------------------------------------------------------------------- model
class PromptIR(nn.Module):
    """PromptIR (va1shn9v/PromptIR definition, `decoder=True`) with MaskDCPT's masked pretraining pass.

    Args (authors' names): dim = level-1 width (levels double it); num_blocks = blocks of encoder
    levels 1-3 and the latent (decoder levels reuse the first three); heads per level (the three
    noise_level blocks use heads[2]); LayerNorm_type 'WithBias' or 'BiasFree'. The prompt settings the
    authors hard-code for dim 48 are arguments here: prompt_dims (64, 128, 320) for prompt1..3,
    prompt_sizes (64, 32, 16), prompt_len 5; their derived widths (the authors' 64/224/512 extra
    channels of noise_level1..3, chnl_reduce3's 256 outputs = 2 * prompt_dims[1]) follow from them.
    """

    size_multiple = 8  # three 2x downsamplings
    head_name = "output"  # the restoration head (its input: the features the KNN probe reads)
    min_mask_patch = 8  # deepest stride
    tap_downsample = True  # taps at H/2, H/4, H/8

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, bias: bool = False,
                 LayerNorm_type: str = "WithBias", decoder: bool = True,
                 prompt_dims: Sequence[int] = (64, 128, 320), prompt_sizes: Sequence[int] = (64, 32, 16),
                 prompt_len: int = 5) -> None:
        super().__init__()
        if not decoder:
            raise ValueError("decoder=False is not a working PromptIR (the authors' code then fails at up4_3)")
        if len(num_blocks) != 4 or len(heads) != 4 or len(prompt_dims) != 3 or len(prompt_sizes) != 3:
            raise ValueError("num_blocks and heads need 4 entries; prompt_dims and prompt_sizes 3")

        def level(width: int, n_heads: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(width, n_heads, ffn_expansion_factor, bias, LayerNorm_type)
                                   for _ in range(n)])

        def block(width: int) -> TransformerBlock:
            return TransformerBlock(width, heads[2], ffn_expansion_factor, bias, LayerNorm_type)

        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        p1, p2, p3 = prompt_dims
        self.decoder = decoder
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.prompt1 = PromptGenBlock(p1, prompt_len, prompt_sizes[0], lin_dim=d2)
        self.prompt2 = PromptGenBlock(p2, prompt_len, prompt_sizes[1], lin_dim=d3)
        self.prompt3 = PromptGenBlock(p3, prompt_len, prompt_sizes[2], lin_dim=d4)
        # defined by the authors, never used in their forward
        self.chnl_reduce1 = nn.Conv2d(p1, p1, kernel_size=1, bias=bias)
        self.chnl_reduce2 = nn.Conv2d(p2, p2, kernel_size=1, bias=bias)
        self.chnl_reduce3 = nn.Conv2d(p3, 2 * p2, kernel_size=1, bias=bias)
        self.reduce_noise_channel_1 = nn.Conv2d(d1 + p1, d1, kernel_size=1, bias=bias)
        self.encoder_level1 = level(d1, heads[0], num_blocks[0])
        self.down1_2 = Downsample(d1)
        self.reduce_noise_channel_2 = nn.Conv2d(d2 + p2, d2, kernel_size=1, bias=bias)
        self.encoder_level2 = level(d2, heads[1], num_blocks[1])
        self.down2_3 = Downsample(d2)
        self.reduce_noise_channel_3 = nn.Conv2d(d3 + 2 * p2, d3, kernel_size=1, bias=bias)
        self.encoder_level3 = level(d3, heads[2], num_blocks[2])
        self.down3_4 = Downsample(d3)
        self.latent = level(d4, heads[3], num_blocks[3])

        self.up4_3 = Upsample(d3)  # from reduce_noise_level3's 4*dim: gives 2*dim at level 3
        self.reduce_chan_level3 = nn.Conv2d(d2 + d3, d3, kernel_size=1, bias=bias)
        self.noise_level3 = block(d4 + p3)
        self.reduce_noise_level3 = nn.Conv2d(d4 + p3, d3, kernel_size=1, bias=bias)
        self.decoder_level3 = level(d3, heads[2], num_blocks[2])
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, kernel_size=1, bias=bias)
        self.noise_level2 = block(d3 + p2)
        self.reduce_noise_level2 = nn.Conv2d(d3 + p2, d3, kernel_size=1, bias=bias)
        self.decoder_level2 = level(d2, heads[1], num_blocks[1])
        self.up2_1 = Upsample(d2)  # no channel reduction at level 1: the decoder works at 2*dim
        self.noise_level1 = block(d2 + p1)
        self.reduce_noise_level1 = nn.Conv2d(d2 + p1, d2, kernel_size=1, bias=bias)
        self.decoder_level1 = level(d2, heads[0], num_blocks[0])
        self.refinement = level(d2, heads[0], num_refinement_blocks)
        self.output = nn.Conv2d(d2, out_channels, kernel_size=3, padding=1, bias=bias)

        for name in ("chnl_reduce1", "chnl_reduce2", "chnl_reduce3", "reduce_noise_channel_1",
                     "reduce_noise_channel_2", "reduce_noise_channel_3"):
            getattr(self, name).requires_grad_(False)  # unused: frozen, so DDP never waits for their grads

        # MaskDCPT: one learned token per encoder level (skips 1-3, latent 4); unused when dense
        for i, c in enumerate((d1, d2, d3, d4), start=1):
            setattr(self, f"mask_token_{i}", nn.Parameter(torch.zeros(1, c, 1, 1)))
        self.feature_dims = [d2, d3, d3]  # reduce_noise_level1, 2, 3 outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore a B x C x H x W image (H, W multiples of 8)."""
        return self._forward(x, None)["out"]

    def forward_pretrain(self, x: torch.Tensor, mask: Mask) -> dict[str, Any]:
        """MaskDCPT pass: masked encoder, densified skips and latent, dense prompt decoder.

        Returns `out` (image; residual on the masked input), `taps` (reduce_noise_level1, 2, 3
        outputs: H/2, H/4, H/8) and `encoder` (level 1-3 outputs and latent, masked, before
        densification)."""
        return self._forward(x, mask)

    def _forward(self, x: torch.Tensor, mask: Mask) -> dict[str, Any]:
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f"input {tuple(x.shape[-2:])} is not a multiple of {self.size_multiple}")
        inp = masking.remask(x, mask)

        enc1 = run_blocks(self.encoder_level1, self.patch_embed(inp, mask), mask)
        enc2 = run_blocks(self.encoder_level2, self.down1_2(enc1, mask), mask)
        enc3 = run_blocks(self.encoder_level3, self.down2_3(enc2, mask), mask)
        lat = run_blocks(self.latent, self.down3_4(enc3, mask), mask)
        encoder = [enc1, enc2, enc3, lat]

        skip1 = masking.densify(enc1, mask, self.mask_token_1)
        skip2 = masking.densify(enc2, mask, self.mask_token_2)
        skip3 = masking.densify(enc3, mask, self.mask_token_3)
        lat = masking.densify(lat, mask, self.mask_token_4)

        tap3 = self.reduce_noise_level3(self.noise_level3(torch.cat([lat, self.prompt3(lat)], 1)))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(tap3), skip3], 1)))
        tap2 = self.reduce_noise_level2(self.noise_level2(torch.cat([dec3, self.prompt2(dec3)], 1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(tap2), skip2], 1)))
        tap1 = self.reduce_noise_level1(self.noise_level1(torch.cat([dec2, self.prompt1(dec2)], 1)))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(tap1), skip1], 1))
        out = self.output(self.refinement(dec1)) + inp
        return {"out": out, "taps": [tap1, tap2, tap3], "encoder": encoder}


# ------------------------------------------------------------------------------- foreign weights
_UNUSED = ("chnl_reduce", "reduce_noise_channel_", "mask_token")


def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: PromptIR | None = None) -> dict[str, torch.Tensor]:
    """Map a checkpoint to our keys: unwraps Lightning's `state_dict` (va1shn9v's release, keys
    `net.*`) and BasicSR's `params_ema` / `params`; drops `net.` / `module.` prefixes; renames
    MaskDCPT-style keys (`<level>.blocks.N.`, `normK.weight` on a plain nn.LayerNorm,
    `downX_Y.conv` / `upX_Y.conv`). With `model`, keys the forward never uses (mask tokens, the
    authors' unused convs, absent from MaskDCPT's copy) are filled from it so a strict load works."""
    state_dict = unwrap(state_dict, ("state_dict", "params_ema", "params"))
    out = {maskdcpt_key(re.sub(r"^(?:module\.|net\.)+", "", k)): v for k, v in state_dict.items()}
    if model is not None:
        for k, v in model.state_dict().items():
            if k.startswith(_UNUSED) and k not in out:
                out[k] = v
    return out


# -------------------------------------------------------------------------------------- variants
def _create(variant: dict[str, Any], kwargs: dict[str, Any]) -> PromptIR:
    return PromptIR(**{**variant, **kwargs})


@register_arch
def promptir_base(**kwargs: Any) -> PromptIR:
    """The paper's PromptIR (35,592,263 parameters without our mask tokens), as MaskDCPT tests it."""
    return _create({"dim": 48, "num_blocks": (4, 6, 6, 8), "num_refinement_blocks": 4, "heads": (1, 2, 4, 8),
                    "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias", "decoder": True,
                    "prompt_dims": (64, 128, 320), "prompt_sizes": (64, 32, 16), "prompt_len": 5}, kwargs)


@register_arch
def promptir_tiny(**kwargs: Any) -> PromptIR:
    """A ~96k-parameter PromptIR for tests (noise_level3, at 8*dim + prompt_dims[2] channels, is a third)."""
    return _create({"dim": 4, "num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1, "heads": (1, 1, 2, 2),
                    "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias",
                    "prompt_dims": (4, 8, 16), "prompt_sizes": (16, 8, 4), "prompt_len": 3}, kwargs)
