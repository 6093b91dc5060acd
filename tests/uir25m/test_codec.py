"""Decoding and normalising every kind of input, made by code (no committed binaries)."""
import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from uir25m import codec

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (21, 34, 3), dtype=np.uint8)


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_8bit_rgb_png_passes_through_byte_for_byte():
    data = save(Image.fromarray(RGB), "PNG")
    d = codec.decode(data)
    assert d.passthrough and d.raw == data and d.conversions == () and d.source_format == "png"
    assert np.array_equal(d.pixels, RGB) and d.size == (34, 21)


def test_jpeg_is_decoded_not_passed_through():
    d = codec.decode(save(Image.fromarray(RGB), "JPEG", quality=90))
    assert not d.passthrough and d.source_format == "jpeg" and d.conversions == () and d.raw == b""


@pytest.mark.parametrize("mode,conv", [
    ("RGBA", ("alpha_dropped",)), ("L", ("gray_to_rgb",)), ("P", ("palette_to_rgb",)),
    ("LA", ("alpha_dropped", "gray_to_rgb")), ("1", ("bilevel_to_rgb",)),
])
def test_modes_are_normalised_with_the_conversion_recorded(mode, conv):
    im = Image.fromarray(RGB).convert(mode)
    d = codec.decode(save(im, "PNG"))
    assert d.conversions == conv and not d.passthrough
    assert d.pixels.shape == (21, 34, 3) and d.pixels.dtype == np.uint8
    assert np.array_equal(d.pixels, np.asarray(im.convert("RGB")))


def test_cmyk_jpeg():
    d = codec.decode(save(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=95))
    assert d.conversions == ("cmyk_to_rgb",) and d.pixels.shape == (21, 34, 3)


def test_16bit_gray_png_rounds_to_8bit():
    arr = (RNG.integers(0, 256, (9, 7)) * 257).astype(np.uint16)
    arr[0, 0] = 257 * 100 + 128  # 100.498 -> 100
    arr[0, 1] = 257 * 100 + 129  # 100.502 -> 101
    d = codec.decode(cv2.imencode(".png", arr)[1].tobytes())
    assert d.conversions == ("16bit_to_8bit", "gray_to_rgb")
    assert d.pixels[0, 0, 0] == 100 and d.pixels[0, 1, 0] == 101
    assert np.array_equal(d.pixels[1:, :, 1], (arr[1:] // 257).astype(np.uint8))


def test_16bit_rgb_png_keeps_channel_order():
    rgb16 = RGB.astype(np.uint16) * 257
    d = codec.decode(cv2.imencode(".png", rgb16[..., ::-1])[1].tobytes())  # cv2 writes BGR
    assert d.conversions == ("16bit_to_8bit",) and not d.passthrough
    assert np.array_equal(d.pixels, RGB)


def test_exif_orientation_is_applied_and_recorded():
    im = Image.fromarray(RGB)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    d = codec.decode(save(im, "JPEG", quality=95, exif=exif.tobytes()))
    assert d.conversions == ("exif_orientation_6_applied",)
    assert d.pixels.shape == (34, 21, 3)


@pytest.mark.parametrize("data,reason", [
    (b"", "empty_file"),
    (b"this is not an image at all", "not_an_image"),
])
def test_bad_bytes_are_rejected_with_a_reason(data, reason):
    with pytest.raises(codec.CodecError) as e:
        codec.decode(data)
    assert e.value.reason == reason


def test_truncated_png_and_jpeg():
    for data in (save(Image.fromarray(RGB), "PNG"), save(Image.fromarray(RGB), "JPEG")):
        with pytest.raises(codec.CodecError) as e:
            codec.decode(data[: len(data) // 2])
        assert e.value.reason == "truncated"


def test_decompression_bomb_guard_is_kept(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(codec.CodecError) as e:
        codec.decode(save(Image.fromarray(RGB), "PNG"))  # 714 px > 2 x 100
    assert e.value.reason == "too_large"


def test_encode_png_round_trips_and_is_deterministic():
    a, b = codec.encode_png(RGB), codec.encode_png(RGB.copy())
    assert a == b and a.startswith(codec.PNG_SIGNATURE)
    assert np.array_equal(codec.decode_png(a), RGB)
    assert codec.png_header(a) == (8, 2)


def test_crop_checks_bounds():
    assert codec.crop(RGB, (2, 3, 5, 4)).shape == (4, 5, 3)
    assert codec.crop(RGB, None) is RGB
    with pytest.raises(ValueError):
        codec.crop(RGB, (30, 0, 5, 4))


def _interlaced_png(rgb: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG (filter 0 everywhere), written by hand: neither Pillow nor
    OpenCV writes interlaced PNGs."""
    import struct

    h, w = rgb.shape[:2]
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_pass_through_inflates_the_image_data_and_checks_its_length():
    rgb = np.random.default_rng(3).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    data = _interlaced_png(rgb)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), rgb)  # a real interlaced PNG
    assert codec.check_passthrough_png(data) == codec.PassThrough(21, 13)
    plain = codec.encode_png(rgb)
    assert codec.check_passthrough_png(plain) == codec.PassThrough(21, 13)
    import struct

    def with_idat(png: bytes, body: bytes) -> bytes:
        out, pos = bytearray(png[:8]), 8
        while pos < len(png):
            n = struct.unpack(">I", png[pos:pos + 4])[0]
            kind = png[pos + 4:pos + 8]
            part = body if kind == b"IDAT" else png[pos + 8:pos + 8 + n]
            out += struct.pack(">I", len(part)) + kind + part + struct.pack(">I", zlib.crc32(kind + part))
            pos += 12 + n
        return bytes(out)

    short = with_idat(plain, zlib.compress(b"\x00" * (1 + 3 * 21) * 12))  # one row short
    long = with_idat(plain, zlib.compress(b"\x00" * (1 + 3 * 21) * 14))  # one row too many
    bad_filter = with_idat(plain, zlib.compress((b"\x07" + b"\x00" * 63) * 13))
    garbled = with_idat(plain, b"\x78\x9c" + bytes(range(200)))
    for damaged, words in ((short, "promises"), (long, "past"), (bad_filter, "filter"), (garbled, "inflate")):
        with pytest.raises(codec.CodecError, match=words) as e:
            codec.check_passthrough_png(damaged)
        assert e.value.reason == "truncated"
