"""Benchmark the MaskDCPT training step against the dense restoration step of the same backbone,
both measured in the same run on synthetic batches (the loader is benchmarked by bench_stream).

    python tools/bench_train.py [--archs nafnet_w64 restormer_base ...] [--batch 4] [--crop 256]
                                [--steps 10] [--warmup 3] [--backend dense|spconv]
                                [--data DATASET --workers 4 8] [--json]

- dense step (the baseline; what fine-tuning does): `forward(lq)`, L1 against GT, backward, AdamW;
- the same task unmasked (mask ratio 0, DCPT-style): the classifier's share of the cost;
- MaskDCPT step: random 16 x 16 masks at 50 %, `forward_pretrain` (sparse-emulated encoder, dense
  decoder), the 19-way classifier on the taps, L1 + focal, backward, AdamW on both groups.
With `--data`, the MaskDCPT step is also fed by the streaming loader from a dataset folder, and the
share of wall time spent waiting for the next batch is reported (target < 10 %).
On CUDA both run under bf16 autocast. Prints ms per step, images/s, peak GPU memory and the ratio
MaskDCPT / dense (DESIGN §9 target: <= 1.3 on a GPU). Default archs: the paper's four on CUDA,
the *_tiny variants on CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import losses, masking
from training.config import ModelConfig, TrainConfig
from training.pretrain import MaskDCPT

PAPER = ["nafnet_w64", "restormer_base", "swinir_base", "promptir_base"]
TINY = ["nafnet_tiny", "restormer_tiny", "swinir_tiny", "promptir_tiny"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step, device: torch.device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def _setup(arch: str, kwargs: dict, device: torch.device, backend: str = "dense", compile_classifier: bool = False):
    """(config, MaskDCPT task on `device`, its AdamW over `task.param_groups()` as training.loop
    builds it, the autocast context: bf16 on CUDA, none on CPU)."""
    cfg = replace(TrainConfig(), model=ModelConfig(arch=arch, kwargs=kwargs, classifier_blocks=2,
                                                   compile_classifier=compile_classifier), mask_backend=backend)
    task = MaskDCPT(cfg).to(device)
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in task.param_groups()],
                            betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    return cfg, task, opt, autocast


def bench_arch(arch: str, kwargs: dict, batch: int, crop: int, steps: int, warmup: int,
               device: torch.device, backend: str = "dense", compile_classifier: bool = False) -> dict:
    cfg, task, opt_mask, autocast = _setup(arch, kwargs, device, backend, compile_classifier)
    unmasked = MaskDCPT(replace(cfg, mask_ratio=0.0)).to(device)
    unmasked.load_state_dict(task.state_dict())
    g = torch.Generator().manual_seed(0)
    data = {"lq": torch.rand(batch, 3, crop, crop, generator=g).to(device),
            "gt": torch.rand(batch, 3, crop, crop, generator=g).to(device),
            "class_id": torch.randint(0, 19, (batch,), generator=g).to(device)}
    opt_dense = torch.optim.AdamW(task.backbone.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas,
                                  weight_decay=cfg.optim.weight_decay)
    counter = iter(range(10**9))

    def dense_step() -> None:
        with autocast:
            out = task.backbone(data["lq"])
        loss = losses.l1(out.float(), data["gt"])
        opt_dense.zero_grad(set_to_none=True)
        loss.backward()
        opt_dense.step()

    def maskdcpt_step(t: MaskDCPT = task) -> None:
        with autocast:
            res = t(data, next(counter))
        opt_mask.zero_grad(set_to_none=True)
        res["loss"].backward()
        opt_mask.step()

    opt_nomask = torch.optim.AdamW(unmasked.parameters(), lr=3e-4, weight_decay=0.0)

    def classify_step() -> None:  # the same task without masking: the classifier's share of the cost
        with autocast:
            res = unmasked(data, 0)
        opt_nomask.zero_grad(set_to_none=True)
        res["loss"].backward()
        opt_nomask.step()

    result = {"arch": arch, "params": sum(p.numel() for p in task.backbone.parameters())}
    for name, fn in (("dense", dense_step), ("unmasked", classify_step), ("maskdcpt", maskdcpt_step)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sec = _time(fn, device, steps, warmup)
        result[f"{name}_ms"] = round(1000 * sec, 2)
        result[f"{name}_img_s"] = round(batch / sec, 2)
        if device.type == "cuda":
            result[f"{name}_peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    result["ratio"] = round(result["maskdcpt_ms"] / result["dense_ms"], 3)
    return result


def bench_fed(arch: str, kwargs: dict, data: str, workers: int, batch: int, crop: int, steps: int, warmup: int,
              device: torch.device, backend: str = "dense") -> dict:
    """MaskDCPT steps fed by the streaming loader from `data` (a dataset folder): the share of wall
    time spent waiting for the next batch (DESIGN §9: < 10 %, the GPU >= 90 % busy)."""
    from training.data import make_loader

    _, task, opt, autocast = _setup(arch, kwargs, device, backend)
    loader = make_loader(data, batch_size=batch, crop=crop, num_workers=workers, seed=0,
                         pin_memory=device.type == "cuda", rank=0, world_size=1)
    it = iter(loader)
    waited = total = 0.0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        try:
            batch_ = next(it)
        except StopIteration:
            it = iter(loader)
            batch_ = next(it)
        t1 = time.perf_counter()
        batch_ = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch_.items()}
        with autocast:
            res = task(batch_, i)
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        opt.step()
        _sync(device)
        if i >= warmup:
            waited += t1 - t0
            total += time.perf_counter() - t0
    return {"arch": arch, "workers": workers, "batch": batch, "crop": crop, "steps": steps,
            "step_ms": round(1000 * total / steps, 2), "img_s": round(batch * steps / total, 2),
            "wait_ms": round(1000 * waited / steps, 2), "wait_fraction": round(waited / total, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="*")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=None, help="default: 256 on CUDA, 64 on CPU")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--backend", choices=["dense", "spconv"], default="dense")
    ap.add_argument("--compile-classifier", action="store_true", help="the classifier through torch.compile")
    ap.add_argument("--swinir-checkpoint", action="store_true", help="activation checkpointing for SwinIR")
    ap.add_argument("--data", help="also run MaskDCPT fed by the streaming loader from this dataset folder")
    ap.add_argument("--workers", type=int, nargs="*", default=[8], help="loader workers for --data (default 8)")
    ap.add_argument("--fed-steps", type=int, default=None,
                    help="timed loader-fed steps (default --steps; more steps drain the prefetched batches)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    archs = a.archs or (PAPER if device.type == "cuda" else TINY)
    crop = a.crop or (256 if device.type == "cuda" else 64)
    masking.check_backend(a.backend)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    machine = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
               "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
               "batch": a.batch, "crop": crop, "backend": a.backend, "bf16": device.type == "cuda",
               "compile_classifier": a.compile_classifier}
    rows = []
    for arch in archs:
        kwargs = {"use_checkpoint": True} if (a.swinir_checkpoint and arch.startswith("swinir")) else {}
        rows.append(bench_arch(arch, kwargs, a.batch, crop, a.steps, a.warmup, device, a.backend, a.compile_classifier))
        gc.collect()  # the previous network's memory back before the next one's peak is measured
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if not a.json:
            r = rows[-1]
            mem = (f", peak {r['dense_peak_gib']} / {r['maskdcpt_peak_gib']} GiB" if "dense_peak_gib" in r else "")
            print(f"{arch:16s} {r['params'] / 1e6:7.2f}M  dense {r['dense_ms']:8.1f} ms ({r['dense_img_s']:.1f} img/s)  "
                  f"+classifier {r['unmasked_ms']:8.1f} ms  MaskDCPT {r['maskdcpt_ms']:8.1f} ms ({r['maskdcpt_img_s']:.1f} img/s)  ratio {r['ratio']:.2f}{mem}",
                  flush=True)
    fed = []
    for arch in archs if a.data else ():
        kwargs = {"use_checkpoint": True} if (a.swinir_checkpoint and arch.startswith("swinir")) else {}
        for workers in a.workers:
            fed.append(bench_fed(arch, kwargs, a.data, workers, a.batch, crop, a.fed_steps or a.steps, a.warmup,
                                 device, a.backend))
            gc.collect()
            if not a.json:
                r = fed[-1]
                print(f"{arch:16s} fed by {workers} workers: {r['step_ms']:8.1f} ms/step ({r['img_s']:.1f} img/s), "
                      f"waiting for data {r['wait_ms']:.1f} ms = {100 * r['wait_fraction']:.1f} % of the step", flush=True)
    if a.json:
        print(json.dumps({"machine": machine, "results": rows, "fed": fed}, indent=2))
    else:
        print(json.dumps(machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
