"""NAFNet specifics: the paper configurations' parameter counts, the taps, the authors' padding,
masked-vs-dense consistency and the checkpoint key remap.

Parameter counts (mask tokens excluded, i.e. what the export for fine-tuning holds):
- `nafnet_w64` = 67,888,835: MILab-PKU/MaskDCPT basicsr/archs/nafnet_arch.py `NAFNetBaseline`
  (width 64, enc [1, 1, 1, 28], middle 1, dec [1, 1, 1, 1], as in its
  options/all_in_one/test/test_NAFNet_5d.yml) counted by running a transcription of the authors'
  class in a scratch folder; megvii-research/NAFNet's `NAFNet` with the same settings (its
  GoPro-width64 model) gives the same number. Cross-checked below with the closed form.
- `nafnet_w32` = 29,159,715: megvii-research/NAFNet basicsr/models/archs/NAFNet_arch.py `NAFNet`
  with options/test/SIDD/NAFNet-width32.yml (width 32, enc [2, 2, 4, 8], middle 12,
  dec [2, 2, 2, 2]), counted the same way.
Closed form (from reading the definitions): a NAFBlock of c channels has 7c^2 + 33c parameters
(conv1 2c^2+2c, depthwise conv2 18c+2c, sca c^2+c, conv3 c^2+c, conv4 2c^2+2c, conv5 c^2+c,
two LayerNorms 4c, beta and gamma 2c); intro 28w, ending 27w+3, a down 8c^2+2c, an up 2C^2.
"""
from __future__ import annotations

import re

import pytest
import torch

from training import archs, masking
from training.archs import nafnet


def _closed_form(width: int, enc: list[int], middle: int, dec: list[int]) -> int:
    def block(c: int) -> int:
        return 7 * c * c + 33 * c

    n, c = 28 * width + 27 * width + 3, width
    for k in enc:
        n += k * block(c) + 8 * c * c + 2 * c
        c *= 2
    n += middle * block(c)
    for k in dec:
        n += 2 * c * c
        c //= 2
        n += k * block(c)
    return n


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "mask_token" not in n)


@pytest.mark.parametrize("name,expected,cfg", [
    ("nafnet_w64", 67_888_835, (64, [1, 1, 1, 28], 1, [1, 1, 1, 1])),
    ("nafnet_w32", 29_159_715, (32, [2, 2, 4, 8], 12, [2, 2, 2, 2])),
])
def test_nafnet_paper_parameter_counts_equal_the_authors(name, expected, cfg):
    model = archs.create_arch(name)
    assert _count(model) == expected == _closed_form(*cfg)
    tokens = {n: tuple(p.shape) for n, p in model.named_parameters() if "mask_token" in n}
    w = cfg[0]
    assert tokens == {f"mask_token_{i}": (1, w * 2**i, 1, 1) for i in range(5)}


def test_nafnet_w64_is_maskdcpts_baseline_and_its_taps_are_the_dcpt_feature_dims():
    model = archs.create_arch("nafnet_w64").eval()
    assert model.feature_dims == (64, 128, 256, 512)  # DCPT's pretrain yml for NAFNet
    assert model.size_multiple == model.min_mask_patch == 16 and model.tap_downsample
    assert model.encoders[0][0].norm1.eps == 1e-5  # MaskDCPT's LayerNorm2d is nn.LayerNorm's default
    x = torch.rand(1, 3, 64, 64)
    mask = masking.random_patch_mask([0], 64, 64, patch=16)
    with torch.no_grad():
        assert model(x).shape == x.shape
        res = model.forward_pretrain(x, mask)
    assert [tuple(t.shape[1:]) for t in res["taps"]] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8)]
    assert [tuple(f.shape[1:]) for f in res["encoder"]] == [(64, 64, 64), (128, 32, 32), (256, 16, 16),
                                                            (512, 8, 8), (1024, 4, 4)]


def test_nafnet_keys_are_megviis():
    keys = set(archs.create_arch("nafnet_w32").state_dict())
    for k in ("intro.weight", "ending.bias", "encoders.3.7.sca.1.weight", "downs.3.weight", "middle_blks.11.beta",
              "ups.0.0.weight", "decoders.3.1.norm2.bias", "encoders.0.0.conv2.weight"):
        assert k in keys, k


def test_nafnet_checkpoint_filter_maps_maskdcpt_and_dcpt_keys():
    model = archs.create_arch("nafnet_tiny", enc_blk_nums=(1, 2, 1, 1), dec_blk_nums=(2, 1, 1, 1))
    ours = {k: v for k, v in model.state_dict().items() if "mask_token" not in k}

    def maskdcpt(k: str) -> str:  # NAFBlocks(...).blocks and decoder<i> attributes, DDP prefix
        k = re.sub(r"^(encoders\.\d+|middle_blks)\.", r"\1.blocks.", k)
        return "module." + re.sub(r"^decoders\.(\d+)\.", r"decoder\1.blocks.", k)

    def dcpt(k: str) -> str:  # nn.Sequential blocks, decoder<i> attributes
        return re.sub(r"^decoders\.(\d+)\.", r"decoder\1.", k)

    for rename, wrap in ((maskdcpt, "params_ema"), (dcpt, "params"), (lambda k: k, None)):
        foreign = {rename(k): v for k, v in ours.items()}
        assert rename is not maskdcpt or "encoders.1.blocks.1.conv1.weight" in {k[7:] for k in foreign}
        ckpt = {wrap: foreign} if wrap else foreign
        fresh = archs.create_arch("nafnet_tiny", enc_blk_nums=(1, 2, 1, 1), dec_blk_nums=(2, 1, 1, 1))
        res = fresh.load_state_dict(nafnet.checkpoint_filter_fn(ckpt), strict=False)
        assert not res.unexpected_keys and all("mask_token" in k for k in res.missing_keys)
        assert all(torch.equal(fresh.state_dict()[k], v) for k, v in ours.items())


def _perturbed_tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    model = archs.create_arch("nafnet_tiny").eval()
    with torch.no_grad():  # beta/gamma start at zero (blocks = identity): make every block count
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def test_nafnet_dense_forward_pads_like_the_authors():
    model = _perturbed_tiny()
    x = torch.rand(1, 3, 50, 37)
    with torch.no_grad():
        y = model(x)
        padded = model(torch.nn.functional.pad(x, (0, 11, 0, 14)))
    assert y.shape == x.shape and torch.allclose(y, padded[..., :50, :37], atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 16"):
        model.forward_pretrain(x, None)


def _flat(res: dict) -> list[torch.Tensor]:
    return [res["out"], *res["taps"], *res["encoder"]]


def test_nafnet_all_visible_mask_equals_dense_and_masked_output_uses_tokens():
    model = _perturbed_tiny()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        dense = model.forward_pretrain(x, None)
        full = model.forward_pretrain(x, torch.ones(2, 1, 4, 4, dtype=torch.bool))
        assert torch.allclose(dense["out"], model(x), atol=1e-6)
        for a, b in zip(_flat(dense), _flat(full)):
            assert torch.allclose(a, b, atol=1e-5)
        mask = masking.random_patch_mask([3, 4], 64, 64, patch=16)
        a = model.forward_pretrain(x, mask)
        model.mask_token_2.add_(1.0)
        b = model.forward_pretrain(x, mask)
    # the encoder does not see the tokens; the decoder does, so the output changes
    assert all(torch.equal(p, q) for p, q in zip(a["encoder"], b["encoder"]))
    assert not torch.allclose(a["out"], b["out"])


def test_nafnet_masked_encoder_is_independent_of_masked_pixels_with_active_blocks():
    """The contract suite's leak test runs fresh models, whose blocks are identities (beta = gamma =
    0); here every block contributes, so the re-masking inside the block is exercised."""
    model = _perturbed_tiny()
    x = torch.rand(2, 3, 64, 64)
    mask = masking.random_patch_mask([7, 8], 64, 64, patch=16)
    x2 = torch.where(masking.at(mask, (64, 64)), x, torch.rand_like(x))
    with torch.no_grad():
        a, b = model.forward_pretrain(x, mask)["encoder"], model.forward_pretrain(x2, mask)["encoder"]
    for fa, fb in zip(a, b):
        vis = masking.at(mask, fa.shape[-2:])
        assert torch.allclose(fa, fb, atol=1e-6) and not fa.masked_select(~vis).any()
        assert fa.masked_select(vis).abs().mean() > 1e-3  # the visible features are not trivially zero


def test_nafnet_masked_encoder_equals_the_dense_encoder_on_the_visible_crop():
    """Sparse semantics: when the visible cells form the left (top) half, masked positions act as
    the zero padding of a dense run on that half and pooling sees only it, so the masked encoder's
    visible features equal the dense encoder's on the crop. This catches constant (input
    independent) contamination that the leak test cannot: unmasked biases before a depthwise conv,
    or channel attention pooled over masked positions."""
    model = _perturbed_tiny()
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[0, :, :, :2] = True  # left half visible
    mask[1, :, :2, :] = True  # top half visible
    with torch.no_grad():
        masked = model.forward_pretrain(x, mask)["encoder"]
        left = model.forward_pretrain(x[:1, :, :, :32], None)["encoder"]
        top = model.forward_pretrain(x[1:, :, :32, :], None)["encoder"]
    for f, fl, ft in zip(masked, left, top):
        h, w = f.shape[-2:]
        assert torch.allclose(f[:1, :, :, : w // 2], fl, atol=1e-5)
        assert torch.allclose(f[1:, :, : h // 2, :], ft, atol=1e-5)
