"""SwinIR: residual groups of (shifted) window-attention Swin blocks, with MaskDCPT's masked
pretraining pass.

Papers:
- "SwinIR: Image Restoration Using Swin Transformer", J. Liang, J. Cao, G. Sun, K. Zhang,
  L. Van Gool, R. Timofte, ICCV Workshops 2021 (arXiv:2108.10257).
- "Universal Image Restoration Pre-training via Masked Degradation Classification" (MaskDCPT),
  J. Hu, Z. Yao, L. Jin, Y. Chen, Y. Lu: its SwinIR is the colour-denoising layout (embed 180, six
  groups of six blocks, six heads, window 8, mlp ratio 2, upscale 1, conv_last head).

Origin: https://github.com/JingyunLiang/SwinIR (models/network_swinir.py; code and released weights
under the Apache-2.0 licence) and https://github.com/MILab-PKU/MaskDCPT (basicsr/archs/swinir_arch.py;
no licence file in the repository, so the licence of its weights is unknown). Written here from the
papers' and repositories' definitions; parameter names follow JingyunLiang's SwinIR (`conv_first`,
`patch_embed.norm`, `layers.N.residual_group.blocks.M.{norm1,attn,norm2,mlp}`, `layers.N.conv`,
`norm`, `conv_after_body`, `conv_last`), so its released denoising checkpoints load after
`checkpoint_filter_fn` (which drops the size-dependent `attn_mask` / `relative_position_index`
buffers: both are computed here, the shifted-window masks on the fly for the actual input size).
MaskDCPT's own SwinIR differs in two ways: its attention has no relative-position bias and its
shifted windows no region mask (both commented out in its code); `rel_pos_bias=False,
shift_mask=False` builds that network, and `checkpoint_filter_fn` renames its `encode_layers.N` /
`decode_layersN` groups to `layers.*`.

Only the scale-1 restoration head (`upsampler=''`: `x + conv_last(...)`) is built; the SR
upsamplers and the absolute position embedding (`ape`) of the original are left out.

Masked pretraining (`forward_pretrain`, SparK-style dense emulation): the (normalised) input is
masked; conv_first and the first half of the residual groups run on masked tokens: masked tokens are
excluded as attention keys (an additive -1e4 on their logits, so their softmax weight underflows to
exactly zero), every block's output and every group's conv output are re-masked, so masked
positions stay zero and nothing of the masked input reaches a visible token. The masked positions of
the first half's output are then filled with a learned `mask_token` and the second half, the final
norm, conv_after_body and conv_last run dense. Taps: the second-half group outputs as B x C x H x W
maps, the group nearest the output first (DCPT hooks `decode_layers*` and reverses the hook list).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.utils.checkpoint as torch_checkpoint
from torch import nn

from training import masking
from training.archs import register_arch, unwrap

__all__ = ["RSTB", "BasicLayer", "SwinIR", "SwinTransformerBlock", "WindowAttention", "checkpoint_filter_fn",
           "swinir_base", "swinir_tiny"]

# additive logit for an excluded (masked) key: exp(-1e4) underflows to 0 in fp32/bf16 softmax, and
# being finite, rows whose keys are all masked (masked queries only) stay NaN-free
_EXCLUDED = -1e4
# the authors' additive logit between tokens of different regions in a shifted window
_OTHER_REGION = -100.0

# attention masks per shift size, built once per forward: None, or additive, (nW, N, N) or (B, nW, M, N)
Masks = dict[int, "torch.Tensor | None"]


# ---------------------------------------------------------------------------------------------- blocks


class DropPath(nn.Module):
    """Stochastic depth per sample (active in training only)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (dropout after each)."""

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 drop: float = 0.0) -> None:
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """B x H x W x C -> (B * nW) x ws x ws x C (windows in row-major order per sample)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, h: int, w: int) -> torch.Tensor:
    """(B * nW) x ws x ws x C -> B x H x W x C."""
    b = windows.shape[0] // ((h // window_size) * (w // window_size))
    x = windows.view(b, h // window_size, w // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def relative_position_index(window_size: int) -> torch.Tensor:
    """N x N index into the (2ws-1)^2 relative-position bias table (N = ws^2)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    flat = coords.flatten(1)  # 2 x N
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0) + (window_size - 1)  # N x N x 2, >= 0
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def shift_region_mask(x_size: Sequence[int], window_size: int, shift_size: int,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """The shifted-window attention mask for a feature map of x_size: nW x N x N, 0 between tokens
    of the same region of the rolled map and -100 across regions (the authors' rule)."""
    h, w = int(x_size[0]), int(x_size[1])
    region = torch.zeros(1, h, w, 1, device=device)
    bounds = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            region[:, hs, ws, :] = label
            label += 1
    windows = window_partition(region, window_size).view(-1, window_size * window_size)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.where(diff != 0, _OTHER_REGION, 0.0)


def key_exclusion_mask(visible: torch.Tensor, window_size: int, shift_size: int) -> torch.Tensor:
    """Additive mask B x nW x 1 x N that excludes masked tokens as keys (visible: B x H x W bool,
    in the layout of the un-rolled map; the block rolls by -shift before partitioning)."""
    if shift_size:
        visible = torch.roll(visible, shifts=(-shift_size, -shift_size), dims=(1, 2))
    b = visible.shape[0]
    windows = window_partition(visible.unsqueeze(-1), window_size).view(b, -1, 1, window_size * window_size)
    return torch.where(windows, 0.0, _EXCLUDED)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 rel_pos_bias: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = (window_size, window_size)  # Wh, Ww (square windows only)
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        if rel_pos_bias:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        else:
            self.relative_position_bias_table = None
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B * nW) x N x C; mask: None or additive, nW x N x N or Bm x nW x M x N (Bm in {1, B},
        M in {1, N})."""
        b_, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.relative_position_bias_table is not None:
            bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
            attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            if mask.ndim == 3:
                mask = mask.unsqueeze(0)
            nw = mask.shape[1]
            attn = (attn.view(-1, nw, self.num_heads, n, n) + mask.unsqueeze(2)).view(-1, self.num_heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class SwinTransformerBlock(nn.Module):
    """LN -> (shifted) window attention -> residual; LN -> MLP -> residual.

    `keep` (B x L x 1, 1 = visible) re-masks the output; the masked tokens' exclusion as keys comes
    with the attention masks (`masks`, built by the model once per forward)."""

    def __init__(self, dim: int, input_resolution: Sequence[int], num_heads: int, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 rel_pos_bias: bool = True, shift_mask: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.mlp_ratio = mlp_ratio
        self.shift_mask = shift_mask
        if min(self.input_resolution) <= self.window_size:  # the authors' rule for small img_size
            self.shift_size = 0
            self.window_size = min(self.input_resolution)
        if not 0 <= self.shift_size < self.window_size:
            raise ValueError("shift_size must be in [0, window_size)")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                    attn_drop=attn_drop, proj_drop=drop, rel_pos_bias=rel_pos_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def calculate_mask(self, x_size: Sequence[int], device: torch.device | str | None = None) -> torch.Tensor | None:
        """This block's dense attention mask for a map of x_size (None for unshifted windows)."""
        if self.shift_size == 0 or not self.shift_mask:
            return None
        return shift_region_mask(x_size, self.window_size, self.shift_size, device)

    def forward(self, x: torch.Tensor, x_size: Sequence[int], masks: Masks | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws).view(-1, ws * ws, c)
        mask = self.calculate_mask(x_size, x.device) if masks is None else masks[s]
        x = window_reverse(self.attn(windows, mask=mask).view(-1, ws, ws, c), ws, h, w)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x if keep is None else x * keep

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, input_resolution={self.input_resolution}, num_heads={self.num_heads}, "
                f"window_size={self.window_size}, shift_size={self.shift_size}, mlp_ratio={self.mlp_ratio}")


class BasicLayer(nn.Module):
    """`depth` Swin blocks, every second one with windows shifted by ws // 2."""

    def __init__(self, dim: int, input_resolution: Sequence[int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float | Sequence[float] = 0.0, use_checkpoint: bool = False,
                 rel_pos_bias: bool = True, shift_mask: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.depth = depth
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size=window_size,
                                 shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio,
                                 qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop, attn_drop=attn_drop,
                                 drop_path=drop_path[i] if isinstance(drop_path, Sequence) else drop_path,
                                 rel_pos_bias=rel_pos_bias, shift_mask=shift_mask)
            for i in range(depth)])

    def forward(self, x: torch.Tensor, x_size: Sequence[int], masks: Masks | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        for blk in self.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                x = torch_checkpoint.checkpoint(blk, x, x_size, masks, keep, use_reentrant=False)
            else:
                x = blk(x, x_size, masks, keep)
        return x


class PatchEmbed(nn.Module):
    """B x C x H x W -> B x HW x C, optionally LayerNorm'ed (patch size 1, as SwinIR uses it)."""

    def __init__(self, embed_dim: int = 96, norm: bool = False) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return x if self.norm is None else self.norm(x)


class PatchUnEmbed(nn.Module):
    """B x HW x C -> B x C x H x W."""

    def __init__(self, embed_dim: int = 96) -> None:
        super().__init__()
        self.embed_dim = embed_dim

    def forward(self, x: torch.Tensor, x_size: Sequence[int]) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], self.embed_dim, x_size[0], x_size[1])


def _conv(module: nn.Module, x: torch.Tensor, keep_map: torch.Tensor | None) -> torch.Tensor:
    """A group's residual conv ('1conv' or the '3conv' sequence), re-masked after every conv when
    keep_map (B x 1 x H x W, 1 = visible) is given."""
    if keep_map is None:
        return module(x)
    for layer in module if isinstance(module, nn.Sequential) else (module,):
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            x = x * keep_map
    return x


class RSTB(nn.Module):
    """Residual Swin Transformer Block: a BasicLayer, a conv on the map, a residual connection."""

    def __init__(self, dim: int, input_resolution: Sequence[int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float | Sequence[float] = 0.0, use_checkpoint: bool = False,
                 resi_connection: str = "1conv", rel_pos_bias: bool = True, shift_mask: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size, mlp_ratio=mlp_ratio,
                                         qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop, attn_drop=attn_drop,
                                         drop_path=drop_path, use_checkpoint=use_checkpoint,
                                         rel_pos_bias=rel_pos_bias, shift_mask=shift_mask)
        self.conv = _resi_conv(dim, resi_connection)
        self.patch_embed = PatchEmbed(dim)
        self.patch_unembed = PatchUnEmbed(dim)

    def forward(self, x: torch.Tensor, x_size: Sequence[int], masks: Masks | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        keep_map = None if keep is None else keep.transpose(1, 2).reshape(x.shape[0], 1, x_size[0], x_size[1])
        y = self.patch_unembed(self.residual_group(x, x_size, masks, keep), x_size)
        return self.patch_embed(_conv(self.conv, y, keep_map)) + x


def _resi_conv(dim: int, resi_connection: str) -> nn.Module:
    """The conv before a residual connection: one 3x3 ('1conv') or 3x3 -> 1x1 -> 3x3 at dim/4 ('3conv')."""
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == "3conv":
        return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim, 3, 1, 1))
    raise ValueError(f"resi_connection must be '1conv' or '3conv', not {resi_connection!r}")


# ----------------------------------------------------------------------------------------------- model


class SwinIR(nn.Module):
    """SwinIR for scale-1 restoration: conv_first -> RSTB groups -> norm -> conv_after_body (+ the
    conv_first features) -> conv_last (+ the input), on (x - mean) * img_range.

    H and W must be multiples of window_size; the shifted-window masks are computed for the actual
    size (img_size only decides, as in the original, whether windows shrink for tiny inputs).
    Activations are large: swinir_base took ~67 GiB for a bf16 training step of 4 x 256 x 256 on an
    H100 (masked and dense alike); `use_checkpoint=True` (per block) cut that to ~10 GiB at ~1.35x
    the step time."""

    head_name = "conv_last"  # the restoration head (its input: the features the KNN probe reads)

    tap_downsample = False

    def __init__(self, img_size: int | Sequence[int] = 64, patch_size: int = 1, in_chans: int = 3,
                 embed_dim: int = 96, depths: Sequence[int] = (6, 6, 6, 6), num_heads: Sequence[int] = (6, 6, 6, 6),
                 window_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 patch_norm: bool = True, use_checkpoint: bool = False, upscale: int = 1, img_range: float = 1.0,
                 upsampler: str = "", resi_connection: str = "1conv", rel_pos_bias: bool = True,
                 shift_mask: bool = True) -> None:
        super().__init__()
        if patch_size != 1 or upscale != 1 or upsampler not in ("", None):
            raise ValueError("only the scale-1 restoration SwinIR (patch_size 1, upscale 1, upsampler '') is built")
        if len(depths) != len(num_heads) or len(depths) < 2:
            raise ValueError("depths and num_heads need the same length, at least 2 (masked half + dense half)")
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.img_range = img_range
        mean = (0.4488, 0.4371, 0.4040) if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.upscale = upscale
        self.upsampler = ""
        self.num_layers = len(depths)
        self.embed_dim = self.num_features = embed_dim
        self.mlp_ratio = mlp_ratio
        self.patches_resolution = list(img_size)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=patch_norm)
        self.patch_unembed = PatchUnEmbed(embed_dim)
        self.pos_drop = nn.Dropout(p=drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList([
            RSTB(embed_dim, img_size, depths[i], num_heads[i], window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                 qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate,
                 drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])], use_checkpoint=use_checkpoint,
                 resi_connection=resi_connection, rel_pos_bias=rel_pos_bias, shift_mask=shift_mask)
            for i in range(self.num_layers)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)
        self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        self.apply(self._init_weights)

        # MaskDCPT: fills the masked tokens between the masked and the dense half (not exported)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim, 1, 1))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

        first = self.layers[0].residual_group.blocks
        self.window_size = window_size
        self._attn_window = first[0].window_size  # the effective window (smaller for tiny img_size)
        self._shifts = sorted({blk.shift_size for layer in self.layers for blk in layer.residual_group.blocks})
        self.shift_mask = shift_mask
        self.feature_dims = [embed_dim] * (self.num_layers - self.num_layers // 2)
        self.size_multiple = self._attn_window
        self.min_mask_patch = self._attn_window

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _check(self, x: torch.Tensor) -> tuple[int, int]:
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"input {h}x{w} is not a multiple of the window size {self.size_multiple} "
                             "(reflect-pad it first, as the authors' test code does)")
        return h, w

    def _attn_masks(self, x_size: Sequence[int], visible: torch.Tensor | None, device: torch.device) -> Masks:
        """Per shift size: the region mask of shifted windows (if used) plus, with `visible`
        (B x H x W bool), the exclusion of masked keys. Built once per forward, shared by all blocks."""
        masks: Masks = {}
        for s in self._shifts:
            m = shift_region_mask(x_size, self._attn_window, s, device).unsqueeze(0) if s and self.shift_mask else None
            if visible is not None:
                k = key_exclusion_mask(visible, self._attn_window, s)
                m = k if m is None else m + k
            masks[s] = m
        return masks

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep features of conv_first's output (dense): groups -> norm, as a B x C x H x W map."""
        x_size = tuple(x.shape[-2:])
        masks = self._attn_masks(x_size, None, x.device)
        t = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            t = layer(t, x_size, masks)
        return self.patch_unembed(self.norm(t), x_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = (x - self.mean) * self.img_range
        x_first = self.conv_first(x)
        res = self.conv_after_body(self.forward_features(x_first)) + x_first
        return (x + self.conv_last(res)) / self.img_range + self.mean

    def forward_pretrain(self, x: torch.Tensor, mask: torch.Tensor | None) -> dict[str, Any]:
        """MaskDCPT's pass (mask: B x 1 x gh x gw bool, True = visible; None = dense). Returns `out`,
        `taps` (the second-half group outputs as maps, the last group first) and `encoder` (the
        first-half group outputs as maps, before the mask token: zero at masked positions)."""
        x_size = self._check(x)
        xn = masking.remask((x - self.mean) * self.img_range, mask)
        x_first = masking.conv(self.conv_first, xn, mask)
        keep = visible = None
        if mask is not None:
            visible = masking.at(mask, x_size)[:, 0]
            keep = visible.flatten(1).unsqueeze(-1).to(x_first.dtype)  # B x L x 1
        t = self.patch_embed(x_first)
        t = self.pos_drop(t if keep is None else t * keep)
        half = self.num_layers // 2
        sparse = self._attn_masks(x_size, visible, x.device)
        encoder: list[torch.Tensor] = []
        for layer in self.layers[:half]:
            t = layer(t, x_size, sparse, keep)
            encoder.append(self.patch_unembed(t, x_size))
        if mask is not None:
            t = masking.densify(encoder[-1], mask, self.mask_token).flatten(2).transpose(1, 2)
        dense = sparse if mask is None else self._attn_masks(x_size, None, x.device)
        taps: list[torch.Tensor] = []
        for layer in self.layers[half:]:
            t = layer(t, x_size, dense)
            taps.append(self.patch_unembed(t, x_size))
        res = self.conv_after_body(self.patch_unembed(self.norm(t), x_size)) + x_first
        out = (xn + self.conv_last(res)) / self.img_range + self.mean
        return {"out": out, "taps": taps[::-1], "encoder": encoder}


# ------------------------------------------------------------------------------------ foreign weights


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None
                         ) -> dict[str, torch.Tensor]:
    """Rename an upstream checkpoint to our keys. Accepts a BasicSR/KAIR file (`params`, the key the
    SwinIR releases and MaskDCPT's SwinIR test config use, else `params_ema`), a DDP `module.` prefix,
    JingyunLiang's keys (unchanged) and MaskDCPT's (`encode_layers.N.*` -> `layers.N.*`,
    `decode_layersN.*` -> `layers.(n_encode + N).*`); drops the `attn_mask` and
    `relative_position_index` buffers (recomputed here)."""
    state_dict = unwrap(state_dict, ("params", "params_ema", "state_dict"))
    n_encode = len({m.group(1) for k in state_dict if (m := re.match(r"^encode_layers\.(\d+)\.", k))})
    out: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        if k.endswith(("attn_mask", "relative_position_index")):
            continue
        k = re.sub(r"^encode_layers\.", "layers.", k)
        k = re.sub(r"^decode_layers(\d+)\.", lambda m: f"layers.{n_encode + int(m.group(1))}.", k)
        out[k] = v
    return out


def _create_swinir(cfg: dict[str, Any], kwargs: dict[str, Any]) -> SwinIR:
    return SwinIR(**{**cfg, **kwargs})


# ------------------------------------------------------------------------------------------- variants


@register_arch
def swinir_base(**kwargs: Any) -> SwinIR:
    """MaskDCPT's SwinIR = the colour-denoising SwinIR (img_size 128, embed 180, 6 x 6 blocks, 6
    heads, window 8, mlp ratio 2): 11,504,163 parameters without the mask token (11,455,563 with
    `rel_pos_bias=False`, as MaskDCPT's released code builds it). drop_path 0 as in MaskDCPT's config."""
    cfg = {"img_size": 128, "in_chans": 3, "embed_dim": 180, "depths": (6,) * 6, "num_heads": (6,) * 6,
           "window_size": 8, "mlp_ratio": 2.0, "drop_path_rate": 0.0, "upscale": 1, "img_range": 1.0,
           "upsampler": "", "resi_connection": "1conv"}
    return _create_swinir(cfg, kwargs)


@register_arch
def swinir_tiny(**kwargs: Any) -> SwinIR:
    """Four groups of two blocks, embed 24, 2 heads, window 8 (for tests): 70,035 parameters + a
    24-channel mask token."""
    cfg = {"img_size": 64, "in_chans": 3, "embed_dim": 24, "depths": (2,) * 4, "num_heads": (2,) * 4,
           "window_size": 8, "mlp_ratio": 2.0, "drop_path_rate": 0.0, "upscale": 1, "img_range": 1.0,
           "upsampler": "", "resi_connection": "1conv"}
    return _create_swinir(cfg, kwargs)
