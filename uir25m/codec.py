"""Decode, validate, normalise and encode images.

One named decoder (Pillow, with its decompression-bomb guard kept; OpenCV for 16-bit colour PNG,
which Pillow cannot hold) turns any input into 8-bit RGB and records each conversion. An 8-bit
RGB PNG that needs no conversion is shipped byte for byte; everything else is encoded once as PNG
with OpenCV at a fixed compression level.
"""
from __future__ import annotations

import contextlib
import io
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # ISA-L's inflate: the same zlib streams, 2-3x faster (the pass-through check inflates every PNG)
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - isal is a dependency; plain zlib gives the same verdicts
    _inflate_lib = zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_PNG_LEVEL = 3


class CodecError(ValueError):
    """An input that cannot be used; `reason` is the rejects-manifest reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Decoded:
    """8-bit RGB pixels of an input and how they were obtained."""

    pixels: np.ndarray  # H x W x 3 uint8, RGB
    source_format: str  # png, jpeg, bmp, tiff, webp, ...
    conversions: tuple[str, ...]  # what was done to reach 8-bit RGB (empty: nothing)
    passthrough: bool  # the input bytes are an 8-bit RGB PNG needing no conversion
    raw: bytes = b""  # the input bytes, kept when `passthrough` (they are what ships)

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.pixels.shape[:2]
        return w, h


def png_header(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None if `data` is not a PNG."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


@dataclass(frozen=True)
class PassThrough:
    """An 8-bit RGB PNG that can ship as it is: its size, read from IHDR."""

    width: int
    height: int


def _adam7_bytes(width: int, height: int, channels: int) -> int:
    """Inflated size of an interlaced 8-bit image: the seven passes, each with its filter bytes."""
    total = 0
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        w, h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if w and h:
            total += h * (1 + w * channels)
    return total


def _check_image_data(idat: list[memoryview], width: int, height: int, interlaced: bool) -> None:
    """Inflate the IDAT stream (in bounded pieces, so a bomb cannot blow up memory) and check
    that it holds exactly the bytes the IHDR promises, with a valid filter byte on every row."""
    expected = _adam7_bytes(width, height, 3) if interlaced else height * (1 + 3 * width)
    inflater = _inflate_lib.decompressobj()
    got, step, row = 0, 1 << 20, 1 + 3 * width
    filters_ok = True
    try:
        for chunk in idat:
            data = inflater.decompress(chunk, step)
            while True:
                if not interlaced and data:
                    start = (-got) % row  # the first filter byte in this piece
                    filters_ok &= bool(np.all(np.frombuffer(data, np.uint8)[start::row] <= 4))
                got += len(data)
                if got > expected:
                    raise CodecError("truncated", f"PNG image data inflates past the {expected} bytes its IHDR promises")
                if not inflater.unconsumed_tail:
                    break
                data = inflater.decompress(inflater.unconsumed_tail, step)
        got += len(inflater.flush())
    except (zlib.error, _inflate_lib.error) as e:
        raise CodecError("truncated", f"PNG image data does not inflate ({e})") from None
    if not inflater.eof or got != expected:
        raise CodecError("truncated", f"PNG image data inflates to {got} bytes, its IHDR promises {expected}"
                                      + ("" if inflater.eof else " (the zlib stream ends early)"))
    if not filters_ok:
        raise CodecError("truncated", "PNG image data has an invalid row filter byte")


def check_passthrough_png(data: bytes) -> PassThrough | None:
    """Validate an 8-bit RGB PNG without decoding it into pixels: signature, IHDR, every chunk's
    CRC up to IEND, IDAT present, no eXIf chunk (orientation would need applying), and the image
    data inflates (zlib) to exactly the size the IHDR promises, with valid row filters: a file
    whose chunks and CRCs are intact but whose data does not inflate is rejected. Bytes after
    IEND are tolerated, as decoders do (the file still ships byte for byte).
    Returns its size if it can ship byte for byte, None if it needs the full decode path
    (other formats or modes); raises CodecError for a damaged file."""
    header = png_header(data)
    if header != (8, 2):
        return None
    pos, n, seen_idat = 8, len(data), False
    view = memoryview(data)
    idat: list[memoryview] = []
    while True:
        if pos + 12 > n:
            raise CodecError("truncated", f"PNG ends inside a chunk header at byte {pos}")
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > n:
            raise CodecError("truncated", f"PNG chunk {kind!r} runs past the end of the file")
        if zlib.crc32(view[pos + 4:pos + 8 + length]) != int.from_bytes(data[end - 4:end], "big"):
            raise CodecError("truncated", f"PNG chunk {kind!r} at byte {pos} fails its CRC")
        if kind == b"eXIf":
            return None
        if kind == b"IDAT":
            seen_idat = True
            idat.append(view[pos + 8:pos + 8 + length])
        pos = end
        if kind == b"IEND":
            break
    if not seen_idat:
        raise CodecError("truncated", "PNG without image data")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:  # the same guard Pillow applies when it decodes
        raise CodecError("too_large", f"{width}x{height} = {width * height} pixels exceeds twice Pillow's "
                                      f"MAX_IMAGE_PIXELS ({limit}): a possible decompression bomb")
    if width == 0 or height == 0:
        raise CodecError("truncated", f"PNG of {width}x{height} pixels")
    if data[26] != 0 or data[27] != 0 or data[28] not in (0, 1):
        return None  # a compression, filter or interlace method no decoder knows: the decode path judges
    _check_image_data(idat, width, height, interlaced=data[28] == 1)
    return PassThrough(width, height)


def _sixteen_bit_png(data: bytes) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise CodecError("truncated", "OpenCV could not decode the 16-bit PNG")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[..., :3]
    rgb = arr[..., ::-1]
    return np.clip(np.rint(rgb.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def decode(data: bytes) -> Decoded:
    """Decode and normalise to 8-bit RGB; raise CodecError with a rejects reason otherwise."""
    if not data:
        raise CodecError("empty_file", "the file has zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            im.load()
    except Image.DecompressionBombError as e:
        raise CodecError("too_large", str(e)) from None
    except UnidentifiedImageError:
        raise CodecError("not_an_image", "no image decoder recognises the bytes") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise CodecError("truncated", f"decoding failed: {e}") from None
    fmt = (im.format or "unknown").lower()
    conversions: list[str] = []
    orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
    header = png_header(data)
    if header is not None and header[0] == 16 and header[1] in (2, 6):  # 16-bit RGB(A): Pillow would truncate
        pixels = _sixteen_bit_png(data)
        conversions.append("16bit_to_8bit")
        if header[1] == 6:
            conversions.append("alpha_dropped")
        if orientation not in (None, 1):
            pil = ImageOps.exif_transpose(Image.fromarray(pixels), in_place=False)
            pixels = np.asarray(pil)
            conversions.append(f"exif_orientation_{orientation}_applied")
        return Decoded(np.ascontiguousarray(pixels), fmt, tuple(conversions), False)
    if orientation not in (None, 1):
        im = ImageOps.exif_transpose(im)
        conversions.append(f"exif_orientation_{orientation}_applied")
    mode = im.mode
    if mode == "RGB":
        pass
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        scale = 257.0 if arr.max(initial=0) <= 65535 else arr.max() / 255.0
        gray = np.clip(np.rint(arr / scale), 0, 255).astype(np.uint8)
        im = Image.fromarray(np.repeat(gray[..., None], 3, axis=2))
        conversions += ["16bit_to_8bit", "gray_to_rgb"]
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        conversions.append("alpha_dropped")
        if mode in ("LA", "La"):
            conversions.append("gray_to_rgb")
        if mode == "PA":
            conversions.append("palette_to_rgb")
        im = im.convert("RGB")
    elif mode == "P":
        if "transparency" in im.info:
            conversions.append("alpha_dropped")
        conversions.append("palette_to_rgb")
        im = im.convert("RGB")
    elif mode in ("L", "1"):
        conversions.append("gray_to_rgb" if mode == "L" else "bilevel_to_rgb")
        im = im.convert("RGB")
    elif mode == "CMYK":
        conversions.append("cmyk_to_rgb")
        im = im.convert("RGB")
    elif mode in ("YCbCr", "LAB", "HSV"):
        conversions.append(f"{mode.lower()}_to_rgb")
        im = im.convert("RGB")
    else:
        raise CodecError("unsupported_mode", f"image mode {mode!r} is not supported")
    pixels = np.asarray(im, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise CodecError("unsupported_mode", f"decoded to shape {pixels.shape}")
    passthrough = header is not None and header == (8, 2) and not conversions
    return Decoded(np.ascontiguousarray(pixels), fmt, tuple(conversions), passthrough, data if passthrough else b"")


@contextlib.contextmanager
def opencv_threads(n: int) -> Iterator[None]:
    """Run a block with OpenCV's thread pool at `n` threads, then give the caller back its own
    setting (a library must not change a process-wide setting behind its caller's back)."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def imencode(ext: str, rgb: np.ndarray, params: list[int]) -> bytes:
    """Encode a uint8 RGB image with OpenCV (`ext` '.png' or '.jpg'; every setting in `params`)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 uint8, got {rgb.dtype} {rgb.shape}")
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode {ext}")
    return buf.tobytes()


def imdecode(data: bytes) -> np.ndarray:
    """uint8 RGB pixels of 8-bit PNG or JPEG bytes, decoded by OpenCV (the fast path for readers)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CodecError("truncated", "OpenCV could not decode the image")
    return bgr[..., ::-1].copy()


def encode_png(rgb: np.ndarray, level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """PNG bytes of a uint8 RGB image (OpenCV's libpng, fixed compression level)."""
    return imencode(".png", rgb, [cv2.IMWRITE_PNG_COMPRESSION, int(level)])


decode_png = imdecode


def crop(pixels: np.ndarray, tile: tuple[int, int, int, int] | None) -> np.ndarray:
    """The (x, y, w, h) window of an image (a view), or the image itself."""
    if not tile:
        return pixels
    x, y, w, h = tile
    H, W = pixels.shape[:2]
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise ValueError(f"tile {tile} outside an image of {W}x{H}")
    return np.ascontiguousarray(pixels[y:y + h, x:x + w])


def encoder_settings(level: int = DEFAULT_PNG_LEVEL) -> dict[str, str | int]:
    """What build.json records about the encoder and decoder."""
    import PIL

    return {
        "png_encoder": f"opencv {cv2.__version__}",
        "png_compression": int(level),
        "decoder": f"pillow {PIL.__version__} (16-bit colour PNG: opencv {cv2.__version__})",
        "to_uint8": "round half to even after clipping to [0, 1] x 255",
    }
