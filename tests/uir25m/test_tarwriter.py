import hashlib
import tarfile

import pytest

from uir25m.reader import read_member, read_shard
from uir25m.tarwriter import MTIME, ShardTarWriter


def write(path, members):
    offsets = {}
    with ShardTarWriter(path) as w:
        for name, data in members:
            offsets[name] = w.add(name, data)
    return w, offsets


def test_offsets_hash_and_fixed_headers(tmp_path):
    members = [("k1.cls", b"3"), ("k1.gt.png", b"g" * 700), ("k1.json", b"{}"), ("k1.lq.png", b"l" * 513)]
    w, offsets = write(tmp_path / "a.tar", members)
    data = (tmp_path / "a.tar").read_bytes()
    assert w.sha256 == hashlib.sha256(data).hexdigest() and w.size == len(data)
    for name, payload in members:
        assert read_member(tmp_path / "a.tar", offsets[name], len(payload)) == payload
    with tarfile.open(tmp_path / "a.tar") as tf:
        infos = tf.getmembers()
    assert [i.name for i in infos] == [m[0] for m in members]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(MTIME, 0, 0, "", "", 0o444)}
    w2, _ = write(tmp_path / "b.tar", members)
    assert (tmp_path / "b.tar").read_bytes() == data  # deterministic
    assert [s["__key__"] for s in read_shard(tmp_path / "a.tar")] == ["k1"]


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardTarWriter(tmp_path / "x.tar") as w:
            w.add("a.cls", b"1")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
