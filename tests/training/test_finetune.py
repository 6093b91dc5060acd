"""Fine-tuning on CPU (nafnet_tiny, demo shards): starts from a MaskDCPT export with a strict key
check, trains with a cosine schedule and an EMA, exports the EMA weights, resumes exactly after a
crash, and refuses mismatched exports and configs."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

pytest.importorskip("albumentations")

from clirun import cli
from trainruns import overrides, read_log

from training import archs, checkpoints, config, loop
from training.finetune import Restoration


def ft_overrides(demo_dir, **more):
    return [o for o in overrides(demo_dir, **more) if not o.startswith("model.classifier_blocks")]


@pytest.fixture(scope="module")
def pretrained(demo_dir, tmp_path_factory):
    """A short MaskDCPT run's export."""
    out = tmp_path_factory.mktemp("pre") / "run"
    loop.pretrain(config.load("demo", overrides(demo_dir, max_steps=3, ckpt_every=3)), out, progress=False)
    return out / "export.pt"


def test_finetune_starts_from_the_export_trains_and_exports_the_ema(demo_dir, pretrained, tmp_path):
    cfg = config.load("demo_finetune", ft_overrides(demo_dir, init=str(pretrained), max_steps=30, ckpt_every=15))
    export = torch.load(pretrained, map_location="cpu", weights_only=True)["state_dict"]
    start = Restoration(cfg).backbone.state_dict()
    assert all(torch.equal(start[k], v) for k, v in export.items())  # every exported weight, as exported
    summary = loop.train(cfg, tmp_path / "ft", progress=False)
    steps = read_log(tmp_path / "ft" / "log-rank0.jsonl")
    assert summary["step"] == 30 and set(steps[30]) >= {"loss", "l1", "psnr"}
    first = sum(steps[s]["loss"] for s in range(1, 6)) / 5
    last = sum(steps[s]["loss"] for s in range(26, 31)) / 5
    assert last < first, (first, last)
    last_ckpt = torch.load(tmp_path / "ft" / "last.pt", map_location="cpu", weights_only=True)
    out = torch.load(tmp_path / "ft" / "export.pt", map_location="cpu", weights_only=True)
    assert out["ema"] and out["arch"] == "nafnet_tiny" and not any("mask_token" in k for k in out["state_dict"])
    ema = {k.removeprefix("module."): v for k, v in last_ckpt["ema"].items() if k != "n_averaged"}
    raw = {k.removeprefix("backbone."): v for k, v in last_ckpt["model"].items()}
    assert all(torch.equal(out["state_dict"][k], ema[k]) for k in out["state_dict"])
    assert any(not torch.equal(ema[k], raw[k]) for k in out["state_dict"])  # the average is not the last step
    model, info = checkpoints.load_model(tmp_path / "ft" / "export.pt")
    assert info["kind"] == "export" and info["step"] == 30 and not model.training
    # the cosine schedule ends at min_lr; the learning rate is logged
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "ft" / "tb"))
    events.Reload()
    lrs = [e.value for e in events.Scalars("lr/restoration")]
    assert lrs[0] == pytest.approx(3e-4, rel=1e-2) and lrs[-1] == pytest.approx(1e-6, rel=1e-3)
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    assert {"train/psnr", "train/l1"} <= set(events.Tags()["scalars"])


def test_an_export_that_does_not_fit_is_refused_by_name(demo_dir, pretrained, tmp_path):
    other = config.load("demo_finetune", ft_overrides(demo_dir, init=str(pretrained), **{"model.arch": "restormer_tiny"}))
    with pytest.raises(ValueError, match=r"export\.pt: holds nafnet_tiny, but the config trains restormer_tiny"):
        Restoration(other)
    state = torch.load(pretrained, map_location="cpu", weights_only=True)
    missing = next(iter(state["state_dict"]))
    del state["state_dict"][missing]
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    cfg = config.load("demo_finetune", ft_overrides(demo_dir, init=str(broken)))
    with pytest.raises(ValueError, match=rf"broken\.pt: .*missing \['{missing}'\]"):
        Restoration(cfg)
    # an authors'-style file with no architecture name loads by the config's arch
    foreign = tmp_path / "foreign.pth"
    torch.save({"params_ema": torch.load(pretrained, weights_only=True)["state_dict"]}, foreign)
    assert Restoration(config.load("demo_finetune", ft_overrides(demo_dir, init=str(foreign)))).init_info["kind"] == "foreign"


def test_finetune_cli_resumes_exactly_after_a_crash_and_refuses_a_pretrain_config(demo_dir, pretrained, tmp_path):
    args = ["finetune", "--config", "demo_finetune", "--init", str(pretrained), "--quiet", "--max-steps", "8",
            *ft_overrides(demo_dir, ckpt_every=4)]
    r = cli("uir-train", *args, "--out", str(tmp_path / "ref"))
    assert r.returncode == 0, r.stderr[-3000:]
    ref = read_log(tmp_path / "ref" / "log-rank0.jsonl")
    run = tmp_path / "crash"
    r = cli("uir-train", *args, "--out", str(run), env={"UIR_CRASH_AT": "after_step@6"})
    assert r.returncode == 77, r.stderr[-2000:]
    r = cli("uir-train", *args, "--out", str(run), "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "log-rank0.jsonl").read_text().splitlines()]
    after = [row for row in rows if "step" in row][-4:]
    assert [row["step"] for row in after] == [5, 6, 7, 8]
    for row in after:
        assert row["loss"] == pytest.approx(ref[row["step"]]["loss"], rel=0, abs=1e-6), row["step"]
    final = [json.loads(line) for line in (tmp_path / "ref" / "log-rank0.jsonl").read_text().splitlines()][-1]
    assert rows[-1]["weights"] == final["weights"]
    ref_export = torch.load(tmp_path / "ref" / "export.pt", weights_only=True)["state_dict"]
    run_export = torch.load(run / "export.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(ref_export[k], run_export[k]) for k in ref_export)  # the EMA resumed exactly too

    r = cli("uir-train", "finetune", "--config", "demo", "--init", str(pretrained), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "is a pretrain config" in r.stderr
    r = cli("uir-train", "finetune", "--config", "demo_finetune", "--init", str(tmp_path / "none.pt"),
            "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "none.pt: no such export" in r.stderr


def test_load_weights_accepts_only_missing_mask_tokens():
    model = archs.create_arch("nafnet_tiny")
    weights = {k: v for k, v in model.state_dict().items() if "mask_token" not in k}
    archs.load_weights(archs.create_arch("nafnet_tiny"), {"params": weights})  # a BasicSR wrapper unwraps
