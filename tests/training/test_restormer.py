"""Restormer specifics: the paper configuration matches the authors' definition, its taps and
attributes, dense/masked consistency, leak-freedom with biases, and the MaskDCPT key remap.

Authors' count: swz30/Restormer `basicsr/models/archs/restormer_arch.py` (commit 861974a),
`Restormer()` with its defaults (dim 48, num_blocks [4,6,6,8], 4 refinement blocks, heads [1,2,4,8],
ffn_expansion_factor 2.66, bias False, LayerNorm 'WithBias', dual_pixel_task False) has 26,126,644
parameters in 494 state-dict entries, counted by running that file in a scratch folder (the paper
reports 26.13M). MaskDCPT's `Restormer` (same defaults, its LayerNorm2d always with bias) has the
same count.
"""
from __future__ import annotations

import re

import pytest
import torch

from training import archs, masking
from training.archs import restormer

AUTHORS_PARAMS = 26_126_644
AUTHORS_STATE_ENTRIES = 494


@pytest.fixture(scope="module")
def base() -> restormer.Restormer:
    torch.manual_seed(0)
    return archs.create_arch("restormer_base").eval()


def _ours(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if "mask_token" not in k}


def test_paper_config_matches_the_authors_count(base):
    assert sum(v.numel() for v in _ours(base).values()) == AUTHORS_PARAMS
    assert len(_ours(base)) == AUTHORS_STATE_ENTRIES
    tokens = sum(p.numel() for n, p in base.named_parameters() if "mask_token" in n)
    assert tokens == 48 + 96 + 192 + 384


def test_authors_parameter_names(base):
    keys = set(base.state_dict())
    for k in ["patch_embed.proj.weight", "encoder_level1.3.norm1.body.weight", "encoder_level1.0.norm1.body.bias",
              "encoder_level2.5.attn.temperature", "encoder_level3.0.attn.qkv_dwconv.weight",
              "down1_2.body.0.weight", "down3_4.body.0.weight", "latent.7.ffn.project_out.weight",
              "up4_3.body.0.weight", "up2_1.body.0.weight", "reduce_chan_level3.weight", "reduce_chan_level2.weight",
              "decoder_level1.3.ffn.dwconv.weight", "decoder_level3.5.attn.project_out.weight",
              "refinement.3.norm2.body.bias", "output.weight"]:
        assert k in keys, k
    assert "reduce_chan_level1.weight" not in keys and "skip_conv.weight" not in keys
    assert base.feature_dims == [96, 96, 192]
    assert (base.size_multiple, base.min_mask_patch, base.tap_downsample) == (8, 8, True)


def test_paper_config_dense_forward_and_taps_at_64(base):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        res = base.forward_pretrain(x, None)
        y = base(x)
    assert torch.equal(res["out"], y) and y.shape == x.shape
    assert [tuple(t.shape[1:]) for t in res["taps"]] == [(96, 64, 64), (96, 32, 32), (192, 16, 16)]
    assert [tuple(f.shape[1:]) for f in res["encoder"]] == [(48, 64, 64), (96, 32, 32), (192, 16, 16), (384, 8, 8)]


def test_all_visible_mask_equals_dense():
    torch.manual_seed(0)
    model = archs.create_arch("restormer_tiny").eval()
    x = torch.rand(2, 3, 32, 48)
    mask = torch.ones(2, 1, 4, 6, dtype=torch.bool)
    with torch.no_grad():
        a, b = model.forward_pretrain(x, mask), model.forward_pretrain(x, None)
    assert torch.allclose(a["out"], b["out"], atol=1e-6)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a["taps"], b["taps"]))


@pytest.mark.parametrize("norm", ["WithBias", "BiasFree"])
def test_no_leak_with_biases_and_patch_8(norm):
    """With conv biases on (1x1 convs then write non-zero values at masked positions) and the
    smallest allowed patch (8 = the deepest stride), masked pixels still reach nothing visible."""
    torch.manual_seed(0)
    model = archs.create_arch("restormer_tiny", bias=True, LayerNorm_type=norm).eval()
    for p in model.parameters():  # non-trivial norms and biases
        torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(2, 3, 32, 32)
    mask = masking.random_patch_mask([3, 4], 32, 32, patch=8, ratio=0.5)
    x2 = torch.where(masking.at(mask, x.shape[-2:]), x, torch.rand_like(x))
    with torch.no_grad():
        a, b = model.forward_pretrain(x, mask)["encoder"], model.forward_pretrain(x2, mask)["encoder"]
    for fa, fb in zip(a, b):
        vis = masking.at(mask, fa.shape[-2:]).to(fa.dtype)
        assert torch.allclose(fa * vis, fb * vis, atol=1e-5)
        assert torch.count_nonzero(fa * (1 - vis)) == 0


def test_masked_output_uses_the_latent_mask_token():
    """Decoder inputs at masked positions are the learned tokens: changing a token changes the output."""
    torch.manual_seed(0)
    model = archs.create_arch("restormer_tiny").eval()
    x = torch.rand(1, 3, 32, 32)
    mask = masking.random_patch_mask([0], 32, 32, patch=16, ratio=0.5)
    with torch.no_grad():
        a = model.forward_pretrain(x, mask)["out"]
        model.mask_token_4.add_(1.0)
        b = model.forward_pretrain(x, mask)["out"]
    assert not torch.allclose(a, b)


def _maskdcpt_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (swz30) keys renamed to the layout of MaskDCPT's `Restormer` (RestormerBlock.blocks,
    nn.LayerNorm norms, Downsample/Upsample `.conv`)."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"^(encoder_level\d|latent|decoder_level\d|refinement)\.(\d+)\.", r"\1.blocks.\2.", k)
        k = k.replace(".body.weight", ".weight").replace(".body.bias", ".bias")
        k = re.sub(r"^((?:down|up)\d_\d)\.body\.0\.", r"\1.conv.", k)
        out[k] = v
    return out


def test_checkpoint_filter_maps_maskdcpt_and_swz30_keys():
    src = archs.create_arch("restormer_tiny")
    ours = _ours(src)
    foreign = _maskdcpt_keys(ours)
    assert "encoder_level1.blocks.0.norm1.weight" in foreign and "down1_2.conv.weight" in foreign
    for ckpt in ({"params_ema": foreign}, {"params": ours}):
        dst = archs.create_arch("restormer_tiny")
        dst.load_state_dict(restormer.checkpoint_filter_fn(ckpt, dst), strict=True)
        assert all(torch.equal(dst.state_dict()[k], v) for k, v in ours.items())
