"""The optional spconv backend: submanifold convolutions equal to the dense emulation, forward and
backward, with more than one torch thread (spconv's CPU scatter-add races without our workaround),
and every backbone's masked pass equal under both backends."""
from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("spconv.pytorch")

from training import archs, masking, sparse_backend

TINY = [n for n in archs.list_archs() if n.endswith("_tiny")]


@pytest.fixture
def spconv_backend():
    with masking.use_backend("spconv"):
        yield


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("bias", [False, True])
def test_submanifold_conv_equals_the_dense_path_forward_and_backward(bias, two_threads):
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(16, 24, 3, padding=1, bias=bias)
    mask = masking.random_patch_mask(range(3), 64, 48, patch=8)
    visible = masking.at(mask, (64, 48))
    for trial in range(8):  # the unpatched CPU path is wrong on some calls only
        x = masking.remask(torch.randn(3, 16, 64, 48, generator=g), mask).requires_grad_(True)
        ref = masking.remask(conv(x), mask)
        w_ref, = torch.autograd.grad(ref.square().sum(), conv.weight)
        x_ref, = torch.autograd.grad(masking.remask(conv(x), mask).square().sum(), x)
        got = sparse_backend.submanifold(conv, x, visible)
        assert torch.count_nonzero(got * ~visible) == 0
        assert torch.allclose(got, ref, atol=1e-5), f"trial {trial}: {(got - ref).abs().max()}"
        w_got, x_got = torch.autograd.grad(got.square().sum(), (conv.weight, x))
        assert torch.allclose(w_got, w_ref, rtol=1e-4, atol=1e-3)
        assert torch.allclose(x_got * visible, x_ref * visible, atol=1e-4)


@pytest.mark.parametrize("name", TINY)
def test_every_backbone_gives_the_same_masked_pass_under_spconv(name, two_threads):
    torch.manual_seed(0)
    model = archs.create_arch(name)
    x = torch.rand(2, 3, 64, 64)
    mask = masking.random_patch_mask([1, 2], 64, 64, patch=16)

    def run():
        model.zero_grad(set_to_none=True)
        res = model.forward_pretrain(x, mask)
        # a smooth loss: |out| flips its gradient where out is within rounding of 0
        (res["out"].square().mean() + sum(t.square().mean() for t in res["taps"])).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return res, grads

    dense, dense_grads = run()
    with masking.use_backend("spconv"):
        sparse, sparse_grads = run()
    assert masking.get_backend() == "dense"  # the scope restores the caller's backend
    assert torch.allclose(sparse["out"], dense["out"], atol=1e-5)
    for a, b in zip(sparse["encoder"] + sparse["taps"], dense["encoder"] + dense["taps"], strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    assert sparse_grads.keys() == dense_grads.keys()
    for n, g in dense_grads.items():
        assert torch.allclose(sparse_grads[n], g, rtol=1e-3, atol=1e-5), n


def test_backend_choice_is_checked():
    with pytest.raises(ValueError, match="known: dense, spconv"):
        masking.check_backend("cuda-magic")
    assert not sparse_backend.supports(torch.nn.Conv2d(4, 4, 3, padding=1, groups=4))
    assert not sparse_backend.supports(torch.nn.Conv2d(4, 4, 2, stride=2))
    assert sparse_backend.supports(torch.nn.Conv2d(4, 8, 3, padding=1))


def test_a_missing_spconv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "spconv.pytorch", None)
    monkeypatch.setattr(sparse_backend, "_PATCHED", False)
    with pytest.raises(ImportError, match=r"uir25m\[sparse\]"):
        with masking.use_backend("spconv"):
            pass
    assert masking.get_backend() == "dense"
