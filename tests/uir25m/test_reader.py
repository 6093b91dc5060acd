"""The format-side reader: path, span, pixel and member-name checks on untrusted datasets."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from uir25m import codec, reader


@pytest.mark.parametrize("path", ["../x.tar", "data/../../x", "/etc/passwd", "data//x.tar", "data/./x.tar",
                                  "C:/x.tar", "data\\x.tar", "a\x00b", "", None, 3])
def test_unsafe_paths_are_refused_naming_where(path):
    with pytest.raises(reader.DatasetError, match="row 7") as e:
        reader.check_relpath(path, "samples.parquet row 7")
    assert e.value.reason == "unsafe_path"


def test_safe_paths_and_shard_paths():
    assert reader.check_relpath("data/train/single/gn/gn-wed-000000.tar", "x")
    reader.check_shard_path("data/train/single/gn/gn-wed-000000.tar", "x")
    for bad in ("manifests/samples.parquet", "data/x.txt"):
        with pytest.raises(reader.DatasetError):
            reader.check_shard_path(bad, "x")


@pytest.mark.parametrize("offset,size,words", [(-1, 4, "negative"), (0, -4, "negative"), (0, 2**41, "over the limit"),
                                               (90, 20, "past the end"), ("0", 4, "not integers"), (True, 4, "not integers")])
def test_spans_are_checked_before_a_read(offset, size, words):
    with pytest.raises(reader.DatasetError, match=words):
        reader.read_span(io.BytesIO(bytes(100)), offset, size, 100, "m")


def test_a_short_read_is_named():
    with pytest.raises(reader.DatasetError, match="short read") as e:
        reader.read_span(io.BytesIO(bytes(10)), 0, 50, 100, "m")  # the file shrank under us
    assert e.value.reason == "short_read"


def test_pixel_limit_is_held_on_the_header(monkeypatch):
    monkeypatch.setattr(reader.Image, "MAX_IMAGE_PIXELS", 100)
    ok = codec.encode_png(np.zeros((10, 10, 3), np.uint8))
    assert reader.decode_bgr(ok, "m").shape == (10, 10, 3)
    big = codec.encode_png(np.zeros((20, 20, 3), np.uint8))  # 400 > 2 x 100
    with pytest.raises(reader.DatasetError, match="over the limit") as e:
        reader.decode_bgr(big, "m")
    assert e.value.reason == "too_large"
    jpg = codec.imencode(".jpg", np.zeros((20, 20, 3), np.uint8), [])
    with pytest.raises(reader.DatasetError, match="over the limit|decompression"):
        reader.image_size(jpg, "m")
    with pytest.raises(reader.DatasetError, match="not a readable image"):
        reader.decode_bgr(b"junk", "m")


def _tar(members) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_iter_tar_groups_by_key_and_refuses_bad_names():
    good = _tar([("a_x_1.cls", b"1"), ("a_x_1.json", b"{}"), ("b_x_2.cls", b"2")])
    assert [(k, sorted(f)) for k, f in reader.iter_tar(good, "t")] == [("a_x_1", ["cls", "json"]), ("b_x_2", ["cls"])]
    for name in ("../../evil.png", "/abs/x.png", "dir/a_x_1.cls", "UPPER.cls", "nodot"):
        with pytest.raises(reader.DatasetError, match="not named <key>.<field>"):
            list(reader.iter_tar(_tar([(name, b"x")]), "t"))
    with pytest.raises(reader.DatasetError, match="twice"):
        list(reader.iter_tar(_tar([("a_x_1.cls", b"1"), ("a_x_1.cls", b"1")]), "t"))
    with pytest.raises(reader.DatasetError, match="not a readable tar"):
        list(reader.iter_tar(io.BytesIO(b"x" * 1000), "t"))
