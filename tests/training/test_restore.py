"""Restoring images of any size: reflect padding, exact round trips of odd sizes whole and tiled,
tiled = untiled for a local network (NAFNet pools globally, so only shape and range are checked
for it), files in and out, and `uir-train restore`."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from trainruns import Identity, cli

from training import archs, restore


class Local(torch.nn.Module):
    """Three 3x3 convs: every output pixel sees 3 pixels around it (no global operation)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(),
                                        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.GELU(),
                                        torch.nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return x + 0.3 * torch.tanh(self.body(x))


@pytest.fixture(scope="module")
def odd():
    return np.ascontiguousarray(data.astronaut()[50:127, 200:331])  # 77 x 131


def test_reflect_padding():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    p = restore.pad_to_multiple(x, 8)
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 3), (0, 1)), mode="reflect")
    assert np.array_equal(p.numpy(), ref)
    assert restore.pad_to_multiple(x, 1) is x
    big = restore.pad_to_multiple(x[..., :3, :2], 16)  # pads longer than the image reflect again
    assert big.shape[-2:] == (16, 16) and torch.equal(big[..., :3, :2], x[..., :3, :2])
    assert restore.pad_to_multiple(x[..., :1, :1], 4).shape[-2:] == (4, 4)  # a 1-pixel side replicates


def test_identity_round_trips_odd_size(odd):
    model = Identity()
    assert np.array_equal(restore.restore_image(model, odd), odd)
    for tile, overlap in ((32, 8), (48, 16), (64, 32), (40, 0)):  # 40 rounds down to 32
        assert np.array_equal(restore.restore_image(model, odd, tile=tile, overlap=overlap), odd), (tile, overlap)
    with pytest.raises(ValueError, match="half the tile"):
        restore.restore_image(model, odd, tile=32, overlap=20)


def test_tiles_match_whole_image_for_a_local_network(odd):
    model = Local().eval()
    x = restore.to_tensor(odd)
    whole = restore.restore_tensor(model, x)
    tiled = restore.restore_tensor(model, x, tile=32, overlap=16)  # blends from overlap // 4 = 4 >= 3 pixels in
    assert (tiled - whole).abs().max() < 1e-5
    assert np.abs(restore.restore_image(model, odd, tile=32, overlap=16).astype(int)
                  - restore.restore_image(model, odd).astype(int)).max() <= 1
    cut = restore.restore_tensor(model, x, tile=32, overlap=4)  # weights from 1 pixel in: context missing
    assert (cut - whole).abs().max() > 1e-4


def test_nafnet_tiles(odd):
    torch.manual_seed(0)
    model = archs.create_arch("nafnet_tiny").eval()
    x = restore.to_tensor(odd)
    tiled = restore.restore_tensor(model, x, tile=48, overlap=16)
    whole = restore.restore_tensor(model, x)
    # NAFNet's channel attention averages over the whole input, so tiles cannot equal the whole
    # image exactly; shape and range only
    assert tiled.shape == whole.shape == (1, 3, 77, 131)
    assert torch.isfinite(tiled).all() and 0 <= tiled.min() and tiled.max() <= 1
    assert restore.restore_image(model, odd, tile=48, overlap=16).shape == odd.shape


def test_restore_files(odd, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(odd).save(src / "a.png")
    Image.fromarray(odd[:40, :60]).save(src / "b.jpg", quality=90)
    (src / "c.png").write_bytes(b"not an image")
    (src / "sub").mkdir()
    Image.fromarray(odd).save(src / "sub" / "a.jpg")  # same stem as a.png
    paths = [src / "a.png", src / "b.jpg", src / "c.png", src / "missing.png", src / "sub" / "a.jpg"]
    summary = restore.restore_files(Identity(), paths, tmp_path / "out", tile=32, overlap=8, progress=False)
    assert summary.written == [tmp_path / "out" / "a.png", tmp_path / "out" / "b.png"]
    assert np.array_equal(cv2.imread(str(tmp_path / "out" / "a.png"))[..., ::-1], odd)
    b = np.asarray(Image.open(src / "b.jpg").convert("RGB"))
    assert np.array_equal(cv2.imread(str(tmp_path / "out" / "b.png"))[..., ::-1], b)
    failed = dict(summary.failed)
    assert set(failed) == {str(p) for p in paths[2:]}
    assert failed[str(src / "c.png")].startswith(str(src / "c.png")) and "not an image" in failed[str(src / "c.png")]
    assert failed[str(src / "missing.png")].startswith(str(src / "missing.png"))
    assert "cannot read" in failed[str(src / "missing.png")]
    assert "same file stem" in failed[str(src / "sub" / "a.jpg")]
    # never overwrite an input: out == the input folder
    again = restore.restore_files(Identity(), [src / "a.png"], src, progress=False)
    assert not again.written and "overwrite an input" in again.failed[0][1]
    # Pillow's decompression-bomb guard stays on
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match="too large to decode safely.*decompression bomb"):
        restore.read_image(src / "a.png")


def test_read_image_modes(odd, tmp_path):
    rotated = Image.fromarray(odd)
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rotated.save(tmp_path / "r.jpg", exif=exif, quality=95)
    assert restore.read_image(tmp_path / "r.jpg").shape == (131, 77, 3)
    Image.fromarray(odd[..., 0].astype(np.uint16) * 257).save(tmp_path / "g16.png")
    grey = restore.read_image(tmp_path / "g16.png")
    assert grey.shape == (77, 131, 3) and np.array_equal(grey[..., 1], odd[..., 0])
    Image.fromarray(np.dstack([odd, np.full(odd.shape[:2], 128, np.uint8)])).save(tmp_path / "a.png")
    assert np.array_equal(restore.read_image(tmp_path / "a.png"), odd)


def test_cli_restore(odd, tmp_path):
    torch.manual_seed(0)
    model = archs.create_arch("nafnet_tiny")
    export = tmp_path / "export.pt"
    torch.save({"arch": "nafnet_tiny", "arch_kwargs": {},
                "state_dict": {k: v for k, v in model.state_dict().items() if "mask_token" not in k}}, export)
    Image.fromarray(odd).save(tmp_path / "one.png")
    Image.fromarray(odd[:50, :70]).save(tmp_path / "two.jpg")
    out = cli("uir-train", "restore", "--checkpoint", str(export), str(tmp_path / "one.png"), str(tmp_path / "two.jpg"),
              "--out", str(tmp_path / "out"), "--tile", "48", "--overlap", "16", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "restored 2 of 2 images" in out.stdout
    assert cv2.imread(str(tmp_path / "out" / "one.png")).shape == odd.shape
    assert cv2.imread(str(tmp_path / "out" / "two.png")).shape == (50, 70, 3)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG truncated")
    out = cli("uir-train", "restore", "--checkpoint", str(export), str(tmp_path / "bad.png"), str(tmp_path / "one.png"),
              "--out", str(tmp_path / "out2"), "--quiet", "--device", "cpu")
    assert out.returncode == 1 and str(tmp_path / "bad.png") in out.stderr
    assert Path(tmp_path / "out2" / "one.png").is_file() and "restored 1 of 2 images" in out.stdout
