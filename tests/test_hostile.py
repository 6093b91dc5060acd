"""Hostile and broken inputs, as an attacker and as an unlucky user would make them: tampered copies
of a demo dataset, a reused run folder, bad arguments. Every case ends in a clear error or a counted
fault: no traceback, no hang, nothing outside the dataset read, linked, written or sent."""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tarfile
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clirun import cli
from PIL import Image

from uir25m import manifest

pytest.importorskip("albumentations")

from training import data as tdata  # noqa: E402


@pytest.fixture()
def ds(demo_dir, tmp_path):
    """A private copy of the small demo dataset to tamper with."""
    out = tmp_path / "ds"
    shutil.copytree(demo_dir, out)
    return out


def rewrite(root, name, change) -> None:
    """Rewrite a manifest with `change(table) -> table`."""
    path = root / name
    table = pq.read_table(path)
    manifest.write_parquet(change(table), path)


def set_column(table: pa.Table, column: str, values) -> pa.Table:
    i = table.schema.get_field_index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))


def only_stream(table: pa.Table, code: str) -> pa.Table:
    return table.filter(pa.compute.equal(table.column("type"), code))


def loader(root, **kw):
    kw = {"subset": "all", "batch_size": 2, "crop": 16, "num_workers": 0, "seed": 0, **kw}
    return tdata.make_loader(str(root), **kw)


def outside_file(tmp_path) -> tuple:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("do not touch")
    os.chmod(secret, 0o600)
    st = os.stat(secret)
    return secret, (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns)


def untouched(secret, before) -> bool:
    st = os.stat(secret)
    return (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns) == before and secret.read_text() == "do not touch"


# --- the loader: never spins, never raises a decoder's error ----------------------------------------

@pytest.mark.parametrize("damage", ["deleted", "offset_past_end", "negative_offset"])
def test_a_stream_that_always_fails_ends_the_run_with_a_clear_error(ds, damage):
    rewrite(ds, manifest.SAMPLES, lambda t: only_stream(t, "gn"))
    if damage == "deleted":
        for p in (ds / "data").rglob("gn-*.tar"):
            p.unlink()
    else:
        def change(t):
            n = t.num_rows
            value = 10**9 if damage == "offset_past_end" else -4096
            return set_column(t, "gt_offset", [value] * n)
        rewrite(ds, manifest.SAMPLES, change)
    it = iter(loader(ds, subset="single", fault_budget=8))
    with pytest.raises(tdata.FaultBudgetError, match=r"stream gn/\w+: 8 samples in a row failed .*uir-build verify"):
        next(it)


def test_the_training_command_reports_a_dead_stream_without_a_traceback(ds, tmp_path):
    rewrite(ds, manifest.SAMPLES, lambda t: only_stream(t, "gn"))
    for p in (ds / "data").rglob("gn-*.tar"):
        p.unlink()
    r = cli("uir-train", "pretrain", "--config", "demo", "--data", str(ds), "--out", str(tmp_path / "run"),
            "--max-steps", "2", "--quiet", "data.num_workers=0", "data.crop=32", "data.fault_budget=4", "data.batch_size=2",
            "model.arch=nafnet_tiny")
    assert r.returncode == 2 and "samples in a row failed" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("damage", ["negative_size", "empty_read", "huge_size", "size_mismatch", "bomb"])
def test_a_bad_sample_is_a_counted_fault(ds, damage):
    table = pq.read_table(ds / manifest.SAMPLES)
    first = table.column("partition").to_pylist().index("train")
    victim = table.slice(first, 1).to_pylist()[0]
    if damage in ("negative_size", "empty_read", "huge_size"):
        value = {"negative_size": -5, "empty_read": 0, "huge_size": 2**40}[damage]
        sizes = table.column("lq_size").to_pylist()
        sizes[first] = value
        rewrite(ds, manifest.SAMPLES, lambda t: set_column(t, "lq_size", sizes))
    else:
        shard = ds / victim["shard"]
        blob = bytearray(shard.read_bytes())
        if damage == "size_mismatch":  # a valid PNG of another size in the LQ's place (same length: pad)
            small = _png(np.zeros((8, 8, 3), np.uint8))
        else:  # a 30000 x 30000 PNG header: a decompression bomb, refused before it is inflated
            small = _bomb_png(30000, 30000)
        assert len(small) <= victim["lq_size"]
        blob[victim["lq_offset"]:victim["lq_offset"] + len(small)] = small
        shard.write_bytes(bytes(blob))
    ld = loader(ds, subset="all", batch_size=4)
    faults = []
    for _ in range(3):  # epochs: every sample is drawn
        for batch in ld:
            faults += batch["faults"]
    assert faults and all(f[-2].endswith(f"sample {victim['key']}") for f in faults), faults
    assert sum(ld.faults.values()) == len(faults)


def test_a_shard_path_outside_the_dataset_is_refused_naming_the_row(ds, tmp_path):
    secret, before = outside_file(tmp_path)
    rewrite(ds, manifest.SAMPLES, lambda t: set_column(t, "shard", ["../outside/secret.txt"] + t.column("shard").to_pylist()[1:]))
    with pytest.raises(ValueError, match=r"samples.parquet row 0: path '../outside/secret.txt'"):
        loader(ds)
    assert untouched(secret, before)


# --- verify: problems, never a traceback ---------------------------------------------------------------

def verify(ds, *extra):
    r = cli("uir-build", "verify", str(ds), "--json", *extra)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, (json.loads(r.stdout)["problems"] if r.stdout.strip().startswith("{") else r.stderr)


@pytest.mark.parametrize("column,value,words", [
    ("gt_offset", -4096, "negative offset"), ("lq_size", 2**40, "over the limit"),
    ("lq_offset", 10**9, "cut short"),
])
def test_verify_reports_bad_spans(ds, column, value, words):
    values = pq.read_table(ds / manifest.SAMPLES).column(column).to_pylist()
    values[0] = value
    rewrite(ds, manifest.SAMPLES, lambda t: set_column(t, column, values))
    code, problems = verify(ds, "--decode")
    assert code == 1 and any(words in p["problem"] for p in problems), problems


def test_verify_decode_skips_what_it_reported_broken_and_caps_pixels(ds):
    rows = pq.read_table(ds / manifest.SAMPLES).to_pylist()
    a, b = rows[0], rows[1]
    shard = ds / a["shard"]
    blob = bytearray(shard.read_bytes())
    bomb = _bomb_png(30000, 30000)
    blob[a["lq_offset"]:a["lq_offset"] + len(bomb)] = bomb  # a bomb where an LQ was
    shard.write_bytes(bytes(blob))
    sizes = pq.read_table(ds / manifest.SAMPLES).column("gt_size").to_pylist()
    sizes[1] = b["gt_size"] + 10**6  # b's GT reaches past the end: cut short
    rewrite(ds, manifest.SAMPLES, lambda t: set_column(t, "gt_size", sizes))
    code, problems = verify(ds, "--decode")
    assert code == 1
    mine = [p["problem"] for p in problems if p["key"] == b["key"]]
    assert any("cut short" in p for p in mine) and not any("does not decode" in p for p in mine)
    bomb_problems = [p["problem"] for p in problems if p["key"] == a["key"]]
    assert any("sha256" in p for p in bomb_problems)


def test_verify_catches_members_named_outside_their_key(ds):
    shard = next((ds / "data").rglob("*.tar"))
    with tarfile.open(shard) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    for name in ("../../../evil_x.png", "/abs/evil.png"):
        with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tf:
            for m, data in members:
                tf.addfile(m, io.BytesIO(data))
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"bad"))
        code, problems = verify(ds)
        assert code == 1 and any(name in p["problem"] and "not named <key>.<field>" in p["problem"] for p in problems)


@pytest.mark.parametrize("path", ["../outside/secret.txt", "ABS"])
def test_shard_paths_outside_the_dataset_are_refused_by_every_command(ds, tmp_path, path):
    secret, before = outside_file(tmp_path)
    path = str(secret) if path == "ABS" else path
    shards = pq.read_table(ds / manifest.SHARDS).column("shard").to_pylist()
    rewrite(ds, manifest.SHARDS, lambda t: set_column(t, "shard", [path] + shards[1:]))
    for args in (["subset", str(ds), "--preset", "all", "--to", str(tmp_path / "sub"), "--link"],
                 ["push", str(ds), "--to", f"file://{tmp_path / 'pushed'}"],
                 ["stats", str(ds)]):
        r = cli("uir-build", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "shards.parquet row 0" in r.stderr and "Traceback" not in r.stderr, r.stderr
    code, problems = verify(ds)
    assert code == 1 and any("must stay inside it" in p["problem"] for p in problems)
    assert untouched(secret, before)
    assert not (tmp_path / "pushed").exists() or not any((tmp_path / "pushed").rglob("secret.txt"))
    assert not (tmp_path / "outside" / "data").exists()


def test_preview_over_a_bomb_skips_it(ds, tmp_path):
    rows = pq.read_table(ds / manifest.SAMPLES).to_pylist()
    a = rows[0]
    shard = ds / a["shard"]
    blob = bytearray(shard.read_bytes())
    bomb = _bomb_png(30000, 30000)
    blob[a["gt_offset"]:a["gt_offset"] + len(bomb)] = bomb
    shard.write_bytes(bytes(blob))
    r = cli("uir-build", "preview", str(ds), "--out", str(tmp_path / "sheet.png"), "--per-type", "3")
    assert r.returncode == 0 and "Traceback" not in r.stderr and "skipped" in r.stderr, r.stderr
    assert Image.open(tmp_path / "sheet.png").size[0] > 0


# --- push verifies before it sends ---------------------------------------------------------------------

def test_push_refuses_a_corrupt_shard_and_sends_it_on_no_rerun(ds, tmp_path):
    assert cli("uir-build", "card", str(ds)).returncode == 0
    shard = sorted((ds / "data").rglob("*.tar"))[3]
    blob = bytearray(shard.read_bytes())
    blob[700] ^= 0xFF
    shard.write_bytes(bytes(blob))
    for _ in range(2):
        r = cli("uir-build", "push", str(ds), "--to", f"file://{tmp_path / 'pushed'}")
        assert r.returncode == 2 and str(shard.relative_to(ds)) in r.stderr and "damaged" in r.stderr, r.stderr
        assert not (tmp_path / "pushed" / shard.relative_to(ds)).exists()


# --- the builder ----------------------------------------------------------------------------------------

def test_bad_arguments_are_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    r = cli("uir-build", "demo", "--out", str(out), "--workers", "0")
    assert r.returncode == 2 and "--workers must be >= 1" in r.stderr
    assert not out.exists()


def test_a_png_whose_data_does_not_inflate_is_rejected(tmp_path):
    import yaml

    raw = tmp_path / "raw" / "rain13k" / "train" / "Rain13K"
    for folder in ("input", "target"):
        (raw / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        (raw / "input" / name).write_bytes(_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)))
        (raw / "target" / name).write_bytes(_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)))
    (raw / "input" / "b.png").write_bytes(_bad_idat(_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "x", "sources": [{"source": "rain13k", "parts": ["train"]}]}))
    r = cli("uir-build", "build", "--recipe", str(recipe), "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
            "--workers", "1", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["pairs"] == 1 and s["rejects_by_reason"] == {"partner_rejected": 1, "truncated": 1}
    rej = {x["path"]: x for x in pq.read_table(tmp_path / "out" / manifest.REJECTS).to_pylist()}
    assert "inflate" in rej["train/Rain13K/input/b.png"]["detail"]


# --- training run folders --------------------------------------------------------------------------------

def test_a_run_folder_is_never_overwritten_and_bad_checkpoints_are_clear_errors(demo_dir, tmp_path):
    run = tmp_path / "run"
    opts = ["--config", "demo", "--data", str(demo_dir), "--out", str(run), "--quiet"]
    sets = ["data.num_workers=0", "data.crop=32", "model.arch=nafnet_tiny"]
    base = [*opts, "--max-steps", "1", *sets]
    assert cli("uir-train", "pretrain", *base).returncode == 0
    before = {p: (run / p).read_bytes() for p in ("last.pt", "export.pt")}
    r = cli("uir-train", "pretrain", *base)
    assert r.returncode == 2 and "holds a run" in r.stderr and "--mode overwrite" in r.stderr
    assert {p: (run / p).read_bytes() for p in before} == before
    (run / ".last.pt.tmp-12345").write_bytes(b"half a checkpoint")
    r = cli("uir-train", "pretrain", *opts, "--mode", "overwrite", "--max-steps", "1", *sets)
    assert r.returncode == 0 and not (run / ".last.pt.tmp-12345").exists()
    for damage in (b"not a checkpoint at all", (run / "last.pt").read_bytes()[:1000]):
        (run / "last.pt").write_bytes(damage)
        r = cli("uir-train", "pretrain", *opts, "--resume", "--max-steps", "2", *sets)
        assert r.returncode == 2 and "not a readable run checkpoint" in r.stderr and "Traceback" not in r.stderr
    r = cli("uir-train", "pretrain", *opts, "--mode", "overwrite", *sets, "data.batch_size=0")
    assert r.returncode == 2 and "data.batch_size must be a whole number >= 1" in r.stderr


# --- helpers ------------------------------------------------------------------------------------------------

def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb_png(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h pixels (its data inflates to far less)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


def _bad_idat(data: bytes) -> bytes:
    """The same PNG with its image data garbled but every chunk's CRC recomputed."""
    out, pos = bytearray(data[:8]), 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], bytearray(data[pos + 8:pos + 8 + length])
        if kind == b"IDAT":
            for i in range(2, len(body) - 4, 7):
                body[i] ^= 0x5A
        out += _chunk(kind, bytes(body))
        pos += 12 + length
    return bytes(out)


def test_verify_decode_holds_a_consistent_bomb_to_the_pixel_limit(ds):
    """A shard and manifest rewritten together around a bomb (hashes and sizes all agree): verify
    --decode refuses it on its header, without inflating 2.7 GB of pixels."""
    import hashlib

    from uir25m.tarwriter import ShardTarWriter

    table = pq.read_table(ds / manifest.SAMPLES)
    rows = table.to_pylist()
    shard = rows[0]["shard"]
    mine = [r for r in rows if r["shard"] == shard]
    old = (ds / shard).read_bytes()
    bomb = _bomb_png(30000, 30000)
    with ShardTarWriter(ds / shard) as tar:
        for j, r in enumerate(mine):
            for field in manifest.FIELDS:
                short = field.split(".")[0]
                data = old[r[f"{short}_offset"]:r[f"{short}_offset"] + r[f"{short}_size"]]
                if j == 0 and field == "lq.png":
                    data = bomb
                    r["lq_sha256"] = hashlib.sha256(bomb).hexdigest()
                r[f"{short}_offset"], r[f"{short}_size"] = tar.add(f"{r['key']}.{field}", data), len(data)
    fixed = {r["key"]: r for r in mine}
    manifest.write_parquet(pa.Table.from_pylist([fixed.get(r["key"], r) for r in rows], schema=table.schema),
                           ds / manifest.SAMPLES)
    code, problems = verify(ds, "--decode")
    assert code == 1
    keyed = [p["problem"] for p in problems if p["key"] == mine[0]["key"]]
    assert keyed and all("lq does not decode" in p and "over the limit" in p for p in keyed), problems
