"""SwinIR-specific checks (the registry-wide contract is in test_archs.py).

Parameter count of the paper configuration, derived by reading JingyunLiang/SwinIR
models/network_swinir.py (colour denoising: img_size 128, embed 180, depths/heads 6 x 6, window 8,
mlp_ratio 2, upscale 1, upsampler '', resi_connection '1conv', patch_norm True, ape False):

- one Swin block (C = 180, hidden 360, 6 heads): norm1 360 + relative_position_bias_table
  15 * 15 * 6 = 1,350 + qkv 180 * 540 + 540 = 97,740 + proj 180 * 180 + 180 = 32,580 + norm2 360
  + fc1 180 * 360 + 360 = 65,160 + fc2 360 * 180 + 180 = 64,980 = 262,530;
- one RSTB: 6 blocks + conv 3x3 180 -> 180 (291,780) = 1,866,960; six of them 11,201,760;
- conv_first 3 -> 180 3x3 (5,040) + patch_embed.norm 360 + norm 360 + conv_after_body 291,780
  + conv_last 180 -> 3 3x3 (4,863) = 302,403;
- total 11,504,163 (the `attn_mask` / `relative_position_index` buffers are not parameters).

MaskDCPT's basicsr/archs/swinir_arch.py (the network its swinir_maskdcpt_5d.pth loads into,
`strict_load_g: true`) comments the relative-position bias out: 11,504,163 - 36 * 1,350 = 11,455,563.
"""
from __future__ import annotations

import pytest
import torch

from training import archs, masking
from training.archs import swinir

PAPER_PARAMS = 11_504_163
MASKDCPT_PARAMS = 11_455_563


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "mask_token" not in n)


def test_paper_configuration_has_the_authors_parameter_count_and_names():
    model = archs.create_arch("swinir_base")
    assert _count(model) == PAPER_PARAMS
    assert _count(archs.create_arch("swinir_base", rel_pos_bias=False, shift_mask=False)) == MASKDCPT_PARAMS
    keys = set(model.state_dict())
    for k in ("conv_first.weight", "patch_embed.norm.weight", "layers.5.conv.weight", "norm.bias",
              "layers.5.residual_group.blocks.5.attn.relative_position_bias_table",
              "layers.0.residual_group.blocks.1.mlp.fc2.weight", "conv_after_body.weight", "conv_last.weight"):
        assert k in keys, k
    assert model.feature_dims == [180, 180, 180]
    assert (model.size_multiple, model.min_mask_patch, model.tap_downsample) == (8, 8, False)


def test_paper_configuration_runs_masked_with_taps_of_the_second_half():
    model = archs.create_arch("swinir_base").eval()
    x = torch.rand(1, 3, 64, 64)  # ~1 s on an idle 2-core CPU
    mask = masking.random_patch_mask([0], 64, 64, patch=16)
    with torch.no_grad():
        res = model.forward_pretrain(x, mask)
    assert res["out"].shape == x.shape
    assert [tuple(t.shape) for t in res["taps"]] == [(1, 180, 64, 64)] * 3
    assert len(res["encoder"]) == 3


@pytest.mark.parametrize("size", [64, 128])
def test_tiny_works_at_sizes_other_than_img_size(size):
    model = archs.create_arch("swinir_tiny").eval()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        y = model(x)
        res = model.forward_pretrain(x, None)
        everything = torch.ones(2, 1, size // 16, size // 16, dtype=torch.bool)
        all_visible = model.forward_pretrain(x, everything)["out"]
    assert torch.equal(y, res["out"]), "the dense pretraining pass differs from forward"
    assert torch.allclose(y, all_visible, atol=1e-6), "an all-visible mask changes the output"
    with pytest.raises(ValueError, match="multiple of the window"):
        model(torch.rand(1, 3, 60, 64))


def test_window_sized_mask_patches_do_not_leak_through_shifted_windows():
    """min_mask_patch = window: masked cells then split shifted windows; masked keys are excluded."""
    torch.manual_seed(0)
    model = archs.create_arch("swinir_tiny").eval()
    x = torch.rand(2, 3, 64, 64)
    mask = masking.random_patch_mask([3, 4], 64, 64, patch=model.min_mask_patch, ratio=0.5)
    x2 = torch.where(masking.at(mask, (64, 64)), x, torch.rand_like(x))
    with torch.no_grad():
        a = model.forward_pretrain(x, mask)["encoder"]
        b = model.forward_pretrain(x2, mask)["encoder"]
    for fa, fb in zip(a, b):
        visible = masking.at(mask, fa.shape[-2:]).to(fa.dtype)
        assert torch.allclose(fa * visible, fb * visible, atol=1e-6)
        assert torch.count_nonzero(fa * (1 - visible)) == 0


def test_shifted_window_attention_equals_masked_global_attention():
    """The block's roll + partition + on-the-fly region mask, at a size other than img_size, equals
    attention over the whole map restricted to the same shifted window and the same wrap region."""
    torch.manual_seed(0)
    h, w, ws, s, c = 16, 24, 8, 4, 8
    blk = swinir.SwinTransformerBlock(c, (64, 64), num_heads=2, window_size=ws, shift_size=s,
                                      rel_pos_bias=False).eval()
    with torch.no_grad():  # silence the MLP branch: the block's output is x + attention
        blk.mlp.fc2.weight.zero_()
        blk.mlp.fc2.bias.zero_()
    x = torch.randn(1, h * w, c)
    with torch.no_grad():
        got = blk(x, (h, w)) - x
    r, q = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    r, q = r.flatten(), q.flatten()
    window = ((r - s) % h) // ws * 100 + ((q - s) % w) // ws  # window of the map rolled by -s
    region = (r < s).long() * 2 + (q < s).long()  # tokens that wrapped around, per axis
    allowed = (window[:, None] == window[None]) & (region[:, None] == region[None])
    with torch.no_grad():
        t = blk.norm1(x)[0]
        qkv = blk.attn.qkv(t).view(h * w, 3, 2, c // 2).permute(1, 2, 0, 3)
        logits = (qkv[0] * blk.attn.scale) @ qkv[1].transpose(-2, -1)
        attn = logits.masked_fill(~allowed, float("-inf")).softmax(-1)
        want = blk.attn.proj((attn @ qkv[2]).transpose(0, 1).reshape(h * w, c))
    assert torch.allclose(got[0], want, atol=1e-5)


def test_checkpoint_filter_fn_loads_original_and_maskdcpt_layouts():
    model = archs.create_arch("swinir_tiny", rel_pos_bias=False, shift_mask=False)
    ours = {k: v for k, v in model.state_dict().items() if "mask_token" not in k}
    upstream = {}
    for k, v in ours.items():  # MaskDCPT: encode_layers.0-1, decode_layers0-1, under a DDP prefix
        i = int(k.split(".")[1]) if k.startswith("layers.") else None
        if i is not None:
            rest = k.split(".", 2)[2]
            k = f"encode_layers.{i}.{rest}" if i < 2 else f"decode_layers{i - 2}.{rest}"
        upstream["module." + k] = v
    upstream["module.encode_layers.0.residual_group.blocks.1.attn_mask"] = torch.zeros(64, 64, 64)
    fresh = archs.create_arch("swinir_tiny", rel_pos_bias=False, shift_mask=False)
    result = fresh.load_state_dict(swinir.checkpoint_filter_fn({"params": upstream}), strict=False)
    assert set(result.missing_keys) == {"mask_token"} and not result.unexpected_keys
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in ours.items())
