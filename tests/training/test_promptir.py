"""PromptIR specifics (the registry-wide contract is in test_archs.py).

The paper configuration's parameter count, 35,592,263, is the authors': va1shn9v/PromptIR
`net/model.py` at commit 20eff77, built as `PromptIR(decoder=True)` as their train.py and test.py do,
counted with `sum(p.numel() for p in model.parameters())` in a scratch folder outside this repository
(their state dict has 548 entries). It includes the six 1x1 convs they define but never use
(chnl_reduce1..3, reduce_noise_channel_1..3: 215,296 parameters). Our four mask tokens (48 + 96 +
192 + 384 = 720 parameters) come on top and are dropped by the export. In the same scratch run our
dense output matched theirs to 3e-7 with the same weights (64 x 64 input).
"""
from __future__ import annotations

import re

import pytest
import torch

from training import archs, masking
from training.archs import promptir

PAPER_PARAMS = 35_592_263
UNUSED = ("chnl_reduce1", "chnl_reduce2", "chnl_reduce3",
          "reduce_noise_channel_1", "reduce_noise_channel_2", "reduce_noise_channel_3")


@pytest.fixture(scope="module")
def base() -> promptir.PromptIR:
    torch.manual_seed(0)
    return archs.create_arch("promptir_base").eval()


def _tiny(seed: int = 0) -> promptir.PromptIR:
    torch.manual_seed(seed)
    return archs.create_arch("promptir_tiny")


def test_paper_parameter_count_and_keys_match_the_authors(base):
    params = dict(base.named_parameters())
    assert sum(p.numel() for k, p in params.items() if "mask_token" not in k) == PAPER_PARAMS
    assert sum(p.numel() for k, p in params.items() if "mask_token" in k) == 48 + 96 + 192 + 384
    sd = {k: v for k, v in base.state_dict().items() if "mask_token" not in k}
    assert len(sd) == 548
    shapes = {  # authors' names and shapes (dim 48, hard-coded prompt widths)
        "patch_embed.proj.weight": (48, 3, 3, 3),
        "encoder_level1.0.norm1.body.bias": (48,),
        "latent.7.attn.temperature": (8, 1, 1),
        "prompt1.prompt_param": (1, 5, 64, 64, 64),
        "prompt3.prompt_param": (1, 5, 320, 16, 16),
        "prompt3.linear_layer.weight": (5, 384),
        "noise_level3.attn.qkv.weight": (3 * 704, 704, 1, 1),
        "noise_level2.ffn.project_in.weight": (2 * int(320 * 2.66), 320, 1, 1),
        "reduce_noise_level3.weight": (192, 704, 1, 1),
        "reduce_noise_level2.weight": (192, 320, 1, 1),
        "reduce_noise_level1.weight": (96, 160, 1, 1),
        "up4_3.body.0.weight": (384, 192, 3, 3),
        "reduce_chan_level3.weight": (192, 288, 1, 1),
        "down3_4.body.0.weight": (96, 192, 3, 3),
        "chnl_reduce3.weight": (256, 320, 1, 1),
        "reduce_noise_channel_3.weight": (192, 448, 1, 1),
        "refinement.3.ffn.project_out.weight": (96, int(96 * 2.66), 1, 1),
        "output.weight": (3, 96, 3, 3),
    }
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes


def test_paper_config_dense_forward_taps_and_attributes(base):
    assert base.feature_dims == [96, 192, 192]
    assert (base.size_multiple, base.min_mask_patch, base.tap_downsample) == (8, 8, True)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        res = base.forward_pretrain(x, None)
    assert res["out"].shape == x.shape
    assert [tuple(t.shape[1:]) for t in res["taps"]] == [(96, 16, 16), (192, 8, 8), (192, 4, 4)]
    assert [t.shape[1] for t in res["encoder"]] == [48, 96, 192, 384]


def test_all_visible_mask_is_the_dense_network():
    model = _tiny().eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        dense = model.forward_pretrain(x, None)
        full = model.forward_pretrain(x, torch.ones(2, 1, 4, 4, dtype=torch.bool))
        plain = model(x)
    assert torch.allclose(full["out"], dense["out"], atol=1e-6) and torch.equal(plain, dense["out"])
    for a, b in zip(full["taps"], dense["taps"]):
        assert torch.allclose(a, b, atol=1e-6)


def test_deepest_stride_mask_patch_is_leak_free():
    model = _tiny().eval()
    x = torch.rand(2, 3, 64, 64)
    mask = masking.random_patch_mask([3, 4], 64, 64, patch=model.min_mask_patch, ratio=0.5)
    x2 = torch.where(masking.at(mask, x.shape[-2:]), x, torch.rand_like(x))
    with torch.no_grad():
        a, b = model.forward_pretrain(x, mask), model.forward_pretrain(x2, mask)
    for fa, fb in zip(a["encoder"], b["encoder"]):
        vis = masking.at(mask, fa.shape[-2:]).to(fa.dtype)
        assert torch.equal(fa * vis, fb * vis) and torch.count_nonzero(fa * (1 - vis)) == 0
    assert torch.equal(a["out"], b["out"])  # the decoder sees the masked input only through the encoder
    # the latent's grid is the mask grid itself (H/8 = 8 = 64/8): one mask cell per latent position
    assert a["encoder"][-1].shape[-2:] == mask.shape[-2:]


def test_masked_pass_gives_every_trainable_parameter_a_gradient():
    """DDP with find_unused_parameters=False: nothing trainable may sit out the pretraining pass;
    the authors' unused convs are kept (checkpoint keys, parameter count) but frozen."""
    model = _tiny()
    x = torch.rand(2, 3, 32, 32)
    mask = masking.random_patch_mask([0, 1], 32, 32, patch=16, ratio=0.5)
    res = model.forward_pretrain(x, mask)
    (res["out"].abs().mean() + sum(t.mean() for t in res["taps"])).backward()
    for name, p in model.named_parameters():
        if name.split(".")[0] in UNUSED:
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None, name


def test_checkpoint_filter_fn_reads_lightning_and_maskdcpt_layouts():
    src, dst = _tiny(1), _tiny(2)
    dense = {k: v for k, v in src.state_dict().items() if "mask_token" not in k}
    lightning = {"epoch": 1, "state_dict": {f"net.{k}": v for k, v in dense.items()}}
    dst.load_state_dict(promptir.checkpoint_filter_fn(lightning, dst), strict=True)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in dense.items())

    def maskdcpt_key(k: str) -> str:  # MaskDCPT's mask_promptir_arch naming
        k = re.sub(r"^(encoder_level\d|latent|decoder_level\d|refinement)\.(\d+)\.", r"\1.blocks.\2.", k)
        k = re.sub(r"\.(norm[12])\.body\.", r".\1.", k)
        return re.sub(r"^((?:down|up)\d_\d)\.body\.0\.", r"\1.conv.", k)

    basicsr = {"params": {maskdcpt_key(k): v for k, v in dense.items() if not k.startswith(UNUSED)}}
    assert "encoder_level1.blocks.0.norm1.weight" in basicsr["params"]
    dst = _tiny(3)
    dst.load_state_dict(promptir.checkpoint_filter_fn(basicsr, dst), strict=True)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in dense.items() if not k.startswith(UNUSED))


def test_refuses_bad_sizes_and_the_broken_no_prompt_mode():
    with pytest.raises(ValueError, match="multiple of 8"):
        _tiny()(torch.rand(1, 3, 36, 32))
    with pytest.raises(ValueError, match="decoder=False"):
        archs.create_arch("promptir_tiny", decoder=False)
