"""Contract tests over every registered backbone's tiny variant: dense and masked forward and
backward, the taps the classifier needs, no leak of masked input into visible encoder features,
and an export (no mask tokens) that loads strictly into the dense model."""
from __future__ import annotations

import itertools

import pytest
import torch

from training import archs, masking

TINY = [n for n in archs.list_archs() if n.endswith("_tiny")]


def test_every_architecture_has_a_tiny_variant():
    assert {n.split("_")[0] for n in TINY} == {"nafnet", "restormer", "swinir", "promptir"}


def _inputs(model, batch=2):
    size = max(64, 2 * max(model.size_multiple, 16))
    size -= size % model.size_multiple
    torch.manual_seed(0)
    x = torch.rand(batch, 3, size, size)
    patch = max(16, model.min_mask_patch)
    mask = masking.random_patch_mask(list(range(batch)), size, size, patch=patch, ratio=0.5)
    return x, mask


@pytest.mark.parametrize("name", TINY)
def test_dense_and_masked_forward_backward(name):
    torch.manual_seed(0)
    model = archs.create_arch(name)
    x, mask = _inputs(model)
    y = model(x)
    assert y.shape == x.shape
    head = getattr(model, model.head_name)
    assert isinstance(head, torch.nn.Conv2d) and head.out_channels == 3
    y.abs().mean().backward()
    model.zero_grad()
    res = model.forward_pretrain(x, mask)
    assert res["out"].shape == x.shape
    taps = res["taps"]
    assert [t.shape[1] for t in taps] == list(model.feature_dims)
    if model.tap_downsample:
        sizes = [t.shape[-1] for t in taps]
        assert all(a == 2 * b for a, b in itertools.pairwise(sizes)), sizes
    (res["out"].abs().mean() + sum(t.mean() for t in taps)).backward()
    tokens = [p for n, p in model.named_parameters() if "mask_token" in n]
    assert tokens and all(t.grad is not None and t.grad.abs().sum() > 0 for t in tokens)
    dense = model.forward_pretrain(x, None)
    assert dense["out"].shape == x.shape and len(dense["taps"]) == len(taps)


@pytest.mark.parametrize("name", TINY)
def test_masked_input_does_not_leak_into_visible_encoder_features(name):
    torch.manual_seed(0)
    model = archs.create_arch(name).eval()
    x, mask = _inputs(model)
    hidden = ~masking.at(mask, x.shape[-2:])
    x2 = torch.where(hidden, torch.rand_like(x), x)  # change only the masked pixels
    assert not torch.equal(x, x2)
    with torch.no_grad():
        a = model.forward_pretrain(x, mask)["encoder"]
        b = model.forward_pretrain(x2, mask)["encoder"]
    assert a and len(a) == len(b)
    for fa, fb in zip(a, b):
        visible = masking.at(mask, fa.shape[-2:]).to(fa.dtype)
        assert torch.allclose(fa * visible, fb * visible, atol=1e-6), f"{name}: masked pixels reach a visible feature"
        assert torch.count_nonzero(fa * (1 - visible)) == 0, f"{name}: masked positions are not zero in the encoder"


@pytest.mark.parametrize("name", TINY)
def test_export_loads_strictly_into_the_dense_model(name):
    model = archs.create_arch(name)
    export = {k: v for k, v in model.state_dict().items() if "mask_token" not in k}
    fresh = archs.create_arch(name)
    missing = fresh.load_state_dict(export, strict=False)
    assert set(missing.missing_keys) == {k for k in model.state_dict() if "mask_token" in k}
    assert not missing.unexpected_keys


@pytest.mark.parametrize("name", TINY)
def test_load_weights_refuses_weights_of_another_shape(name):
    model = archs.create_arch(name)
    weights = {k: v for k, v in model.state_dict().items() if "mask_token" not in k}
    archs.load_weights(archs.create_arch(name), weights)
    first = next(iter(weights))
    with pytest.raises(ValueError, match="missing"):
        archs.load_weights(archs.create_arch(name), {k: v for k, v in weights.items() if k != first})
    with pytest.raises(ValueError, match="unexpected"):
        archs.load_weights(archs.create_arch(name), {**weights, "head.extra.weight": torch.zeros(1)})


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: .*nafnet"):
        archs.create_arch("unet3000")
