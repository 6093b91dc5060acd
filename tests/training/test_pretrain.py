"""MaskDCPT pretraining on CPU: heads and losses, masks, the loop on the demo shards (loss falls,
accuracy rises, TensorBoard, export), exact resume after crashes, and 2-rank torchrun (gloo)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("albumentations")

from clirun import cli
from servers import free_port
from trainruns import overrides, read_log

from training import config, losses, masking
from training.heads import DegradationClassifier


def test_classifier_and_losses():
    torch.manual_seed(0)
    clf = DegradationClassifier([8, 16, 32], blocks=1)
    taps = [torch.randn(2, 8, 32, 32), torch.randn(2, 16, 16, 16), torch.randn(2, 32, 8, 8)]
    assert clf(taps).shape == (2, 19) and clf.features(taps).shape == (2, 32)
    flat = DegradationClassifier([8, 8], blocks=1, downsample_taps=True)
    assert flat([torch.randn(2, 8, 16, 16), torch.randn(2, 8, 16, 16)]).shape == (2, 19)
    logits, target = torch.randn(5, 19), torch.tensor([0, 3, 7, 7, 18])
    p = torch.softmax(logits, -1).gather(1, target[:, None]).squeeze(1)
    assert torch.allclose(losses.focal(logits, target, 2.0), (-(1 - p) ** 2 * torch.log(p)).mean())
    restricted = losses.restrict(logits, [0, 3, 7, 18])
    assert torch.isinf(restricted[:, 1]).all() and torch.isfinite(losses.focal(restricted, target))


def test_random_patch_mask():
    m = masking.random_patch_mask([1, 2, 1], 64, 48, patch=16, ratio=0.5)
    assert m.shape == (3, 1, 4, 3) and m.dtype == torch.bool
    assert [int(x.sum()) for x in m] == [6, 6, 6]
    assert torch.equal(m[0], m[2]) and not torch.equal(m[0], m[1])
    assert masking.at(m, (64, 48)).shape == (3, 1, 64, 48)
    with pytest.raises(ValueError, match="multiple"):
        masking.random_patch_mask([0], 40, 48, patch=16)


def test_pretraining_loss_falls_logs_and_exports(demo_dir, tmp_path):
    from training import archs, loop
    cfg = config.load("demo", overrides(demo_dir, max_steps=30, ckpt_every=15))
    summary = loop.pretrain(cfg, tmp_path / "run", progress=False)
    steps = read_log(tmp_path / "run" / "log-rank0.jsonl")
    first = sum(steps[s]["loss"] for s in range(1, 6)) / 5
    last = sum(steps[s]["loss"] for s in range(26, 31)) / 5
    assert summary["step"] == 30 and last < first, (first, last)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/l1", "train/focal", "train/acc", "lr/restoration", "lr/classifier"} <= set(tags["scalars"])
    logged = [e.step for e in events.Scalars("train/loss")]
    assert logged == sorted({1, *range(cfg.log_every, 31, cfg.log_every)}) and tags["images"]
    assert events.Scalars("lr/classifier")[-1].value == pytest.approx(1e-4)
    export = torch.load(tmp_path / "run" / "export.pt", map_location="cpu", weights_only=True)
    assert export["arch"] == "nafnet_tiny" and not any("mask_token" in k for k in export["state_dict"])
    dense = archs.create_arch(export["arch"], **export["arch_kwargs"])
    archs.load_weights(dense, export["state_dict"])
    loaded = dense.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in export["state_dict"].items())


def test_classification_accuracy_on_a_fixed_batch_rises_above_chance(demo_dir):
    from training.data import make_loader
    from training.pretrain import MaskDCPT
    cfg = config.load("demo", overrides(demo_dir, **{"data.batch_size": 8}))
    batch = next(iter(make_loader(str(demo_dir), batch_size=8, crop=64, num_workers=0, seed=1)))
    torch.manual_seed(0)
    task = MaskDCPT(cfg)
    opt = torch.optim.AdamW([{"params": g["params"], "lr": 2e-3} for g in task.param_groups()])
    accs = []
    for step in range(40):
        res = task(batch, step)
        opt.zero_grad()
        res["loss"].backward()
        opt.step()
        accs.append(res["acc"].item())
    assert len(set(batch["class_id"].tolist())) > 1
    assert max(accs[-5:]) > 2 / 19  # well above chance (1/19)


@pytest.mark.parametrize("point", ["during_checkpoint@2", "after_checkpoint@1", "after_step@6"])
def test_crash_then_resume_gives_the_same_next_step_loss(demo_dir, tmp_path, point):
    args = ["pretrain", "--config", "demo", "--quiet", "--max-steps", "10"] + overrides(demo_dir, ckpt_every=4)
    r = cli("uir-train", *args, "--out", str(tmp_path / "ref"))
    assert r.returncode == 0, r.stderr[-3000:]
    ref = read_log(tmp_path / "ref" / "log-rank0.jsonl")
    run = tmp_path / "crash"
    r = cli("uir-train", *args, "--out", str(run), env={"UIR_CRASH_AT": point})
    assert r.returncode == 77, r.stderr[-2000:]
    r = cli("uir-train", *args, "--out", str(run), "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "log-rank0.jsonl").read_text().splitlines()]
    resumed_from = 4  # the last checkpoint that was complete when the process died
    after = [row for row in rows if "step" in row][-(10 - resumed_from):]
    assert [row["step"] for row in after] == list(range(resumed_from + 1, 11))
    for row in after:
        assert row["loss"] == pytest.approx(ref[row["step"]]["loss"], rel=0, abs=1e-6), row["step"]
    final = [json.loads(line) for line in (tmp_path / "ref" / "log-rank0.jsonl").read_text().splitlines()][-1]
    assert rows[-1]["weights"] == final["weights"]


def test_resume_refuses_other_settings(demo_dir, tmp_path):
    from training import loop
    cfg = config.load("demo", overrides(demo_dir, max_steps=2, ckpt_every=2))
    loop.pretrain(cfg, tmp_path / "run", progress=False)
    other = config.load("demo", overrides(demo_dir, max_steps=4, seed=5))
    with pytest.raises(ValueError, match="refusing to resume"):
        loop.pretrain(other, tmp_path / "run", resume=True, progress=False)


def test_torchrun_two_ranks_gloo_disjoint_data_identical_weights(demo_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "training.cli", "pretrain", "--config", "demo", "--quiet", "--max-steps", "4", "--out", str(out),
           *overrides(demo_dir, **{"data.batch_size": 2, "log_keys": "true", "ckpt_every": 2})]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])})
    assert r.returncode == 0, r.stderr[-4000:]
    logs = [[json.loads(line) for line in (out / f"log-rank{i}.jsonl").read_text().splitlines()] for i in range(2)]
    steps = [[row for row in log if "step" in row] for log in logs]
    assert [len(s) for s in steps] == [4, 4]
    keys = [{k for row in s for k in row["keys"]} for s in steps]
    assert keys[0] and keys[1] and not keys[0] & keys[1]  # disjoint data
    assert logs[0][-1]["weights"] == logs[1][-1]["weights"]  # identical weights after all-reduce
    assert (out / "last.pt").is_file() and (out / "export.pt").is_file()


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(config.__file__).parent / "configs").glob("*.yaml")))
def test_every_shipped_config_builds_its_network_and_fits_its_crops(name):
    from training import archs
    from uir25m import subsets
    cfg = config.load(name)
    assert cfg.data.subset in subsets.names()
    model = archs.create_arch(cfg.model.arch, **cfg.model.kwargs)
    assert cfg.data.crop % model.size_multiple == 0 and cfg.data.crop % cfg.mask_patch == 0
    assert cfg.mask_patch % model.min_mask_patch == 0
    assert sum(p.numel() for p in model.parameters()) > (10_000 if name.startswith("demo") else 10_000_000)


def test_the_mask_backend_is_the_tasks_own_and_scoped_to_its_forward():
    """The task runs its configured backend inside its own forward; nothing process-wide changes."""
    from dataclasses import replace

    from training import masking
    from training.config import ModelConfig, TrainConfig
    from training.pretrain import MaskDCPT

    seen = []
    cfg = replace(TrainConfig(), model=ModelConfig(arch="nafnet_tiny"))
    task = MaskDCPT(cfg)
    real = task.backbone.forward_pretrain
    task.backbone.forward_pretrain = lambda x, m: (seen.append(masking.get_backend()), real(x, m))[1]
    batch = {"lq": torch.rand(2, 3, 32, 32), "gt": torch.rand(2, 3, 32, 32), "class_id": torch.tensor([0, 6])}
    task(batch, 0)
    assert seen == ["dense"] and masking.get_backend() == "dense"
    with pytest.raises(ValueError, match="known: dense, spconv"):
        MaskDCPT(replace(cfg, mask_backend="cuda-magic"))


def test_the_classifier_computes_what_the_written_out_layernorm_computed():
    """The fused channels-last LayerNorm gives the classifier's old outputs and gradients (the
    channels-first norm written out by hand) to float rounding."""
    from training import heads

    class Old(torch.nn.Module):  # the norm the classifier used before
        def __init__(self, norm):
            super().__init__()
            self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

        def forward(self, x):
            mu = x.mean(1, keepdim=True)
            var = (x - mu).pow(2).mean(1, keepdim=True)
            return (x - mu) / torch.sqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]

    torch.manual_seed(0)
    new = heads.DegradationClassifier([16, 32, 64], blocks=1)
    import copy

    old = copy.deepcopy(new)
    for block in [b for stage in [*new.stages, new.last_stage] for b in stage]:  # the GPU's path, on the CPU
        for norm in (block.norm1, block.norm2, block.norm3):
            norm.impl = "fused"
    for block in [b for stage in [*old.stages, old.last_stage] for b in stage]:
        block.norm1, block.norm2, block.norm3 = Old(block.norm1), Old(block.norm2), Old(block.norm3)
    taps = [torch.randn(2, c, s, s, requires_grad=True) for c, s in ((16, 32), (32, 16), (64, 8))]
    a, b = new([t.contiguous(memory_format=torch.channels_last) for t in taps]), old(taps)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    ga = torch.autograd.grad(a.square().sum(), [*new.parameters()])
    gb = torch.autograd.grad(b.square().sum(), [*old.parameters()])
    for x, y in zip(ga, gb, strict=True):
        assert torch.allclose(x, y, atol=1e-4, rtol=1e-3)


def test_a_compiled_classifier_keeps_the_checkpoint_names():
    from dataclasses import replace

    from training.config import ModelConfig, TrainConfig
    from training.pretrain import MaskDCPT

    plain = MaskDCPT(replace(TrainConfig(), model=ModelConfig(arch="nafnet_tiny")))
    compiled = MaskDCPT(replace(TrainConfig(), model=ModelConfig(arch="nafnet_tiny", compile_classifier=True)))
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert compiled._classify is not compiled.classifier  # the compiled wrapper runs the same module
