"""The authors' released NAFNet checkpoints (MaskDCPT's and DCPT's `NAFNetBaseline`, width 64) load
into our `nafnet_w64`: a state dict of random tensors with exactly their keys and shapes (fixtures
derived from the authors' architecture definitions, see fixtures/README.md), wrapped as BasicSR
saves it, goes through `archs.load_weights` and `checkpoints.load_model` with every key landing on
the parameter of the same shape and values; a missing key or a wrong shape fails naming the key."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from training import archs, checkpoints

FIXTURES = Path(__file__).parent / "fixtures"
PARAMS = 67_888_835  # NAFNetBaseline(width 64, enc [1, 1, 1, 28], middle 1, dec [1, 1, 1, 1])


def authors_keys(name: str) -> dict[str, list[int]]:
    return json.loads((FIXTURES / f"{name}_nafnet_w64_keys.json").read_text())


def ours(key: str) -> str:
    """Our name for an authors' key, written out here independently of `checkpoint_filter_fn`."""
    key = key.replace(".blocks.", ".")  # MaskDCPT's NAFBlocks(...).blocks
    m = re.fullmatch(r"decoder(\d)\.(.*)", key)
    return f"decoders.{m[1]}.{m[2]}" if m else key


@pytest.fixture(scope="module")
def model():
    return archs.create_arch("nafnet_w64")


@pytest.fixture(scope="module")
def weights():
    """Random tensors with the MaskDCPT keys and shapes (one set, ~270 MB, shared by the tests)."""
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=gen) for k, shape in authors_keys("maskdcpt").items()}


def assert_loaded(model: torch.nn.Module, authors: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    mapped = {ours(k): k for k in authors}
    assert len(mapped) == len(authors)
    assert set(state) - set(mapped) == {k for k in state if k.startswith("mask_token")}
    for ours_key, their_key in mapped.items():
        assert state[ours_key].shape == authors[their_key].shape, ours_key
        assert torch.equal(state[ours_key], authors[their_key]), ours_key


def test_fixtures_describe_the_released_network():
    mask, dcpt = authors_keys("maskdcpt"), authors_keys("dcpt")
    for keys in (mask, dcpt):
        assert len(keys) == 664 and sum(math.prod(s) for s in keys.values()) == PARAMS
    assert [k.replace(".blocks.", ".") for k in mask] == list(dcpt)
    assert mask["encoders.3.blocks.27.conv2.weight"] == [1024, 1, 3, 3]  # depthwise at the deepest level
    assert mask["decoder0.blocks.0.conv1.weight"] == [1024, 512, 1, 1] and mask["ups.0.0.weight"] == [2048, 1024, 1, 1]
    assert dcpt["middle_blks.0.sca.1.weight"] == [1024, 1024, 1, 1]


@pytest.mark.parametrize("wrap", ["params_ema", "params", "module.params_ema"])
def test_maskdcpt_weights_load_strictly(model, weights, wrap):
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    state = {f"module.{k}": v for k, v in weights.items()} if wrap.startswith("module.") else weights
    archs.load_weights(model, {wrap.removeprefix("module."): state})
    assert_loaded(model, weights)
    # spot checks, by hand
    sd = model.state_dict()
    assert torch.equal(sd["encoders.3.27.conv2.weight"], weights["encoders.3.blocks.27.conv2.weight"])
    assert torch.equal(sd["decoders.2.0.norm1.bias"], weights["decoder2.blocks.0.norm1.bias"])
    assert torch.equal(sd["middle_blks.0.beta"], weights["middle_blks.blocks.0.beta"])
    assert torch.equal(sd["ending.weight"], weights["ending.weight"])


def test_dcpt_weights_load_strictly(model, weights):
    dcpt = {k.replace(".blocks.", "."): v for k, v in weights.items()}  # same tensors, DCPT's names
    assert list(dcpt) == list(authors_keys("dcpt"))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    archs.load_weights(model, {"params_ema": dcpt, "params": {}})
    assert_loaded(model, dcpt)


def test_load_model_reads_an_authors_file(model, weights, tmp_path):
    path = tmp_path / "nafnet_maskdcpt_5d.pth"
    torch.save({"params_ema": weights}, path)
    with pytest.raises(ValueError, match="--arch"):
        checkpoints.load_model(path)
    loaded, info = checkpoints.load_model(path, arch="nafnet_w64")
    assert info["kind"] == "foreign" and info["arch"] == "nafnet_w64" and not loaded.training
    assert_loaded(loaded, weights)
    assert loaded.encoders[0][0].norm1.eps == 1e-5  # MaskDCPT's nn.LayerNorm eps


def test_missing_or_misshapen_key_is_named(model, weights):
    missing = dict(weights)
    del missing["encoders.3.blocks.5.conv1.weight"]
    with pytest.raises(ValueError, match=re.escape("encoders.3.5.conv1.weight")):
        archs.load_weights(model, {"params_ema": missing})
    wrong = dict(weights)
    wrong["decoder1.blocks.0.conv3.weight"] = torch.zeros(128, 128, 1, 1)
    # load_state_dict reports size mismatches as RuntimeError, naming the parameter
    with pytest.raises((ValueError, RuntimeError), match=re.escape("decoders.1.0.conv3.weight")):
        archs.load_weights(model, {"params_ema": wrong})
    extra = {**weights, "encoders.0.blocks.1.beta": torch.zeros(1, 64, 1, 1)}  # a block too many
    with pytest.raises(ValueError, match=re.escape("encoders.0.1.beta")):
        archs.load_weights(model, {"params_ema": extra})
