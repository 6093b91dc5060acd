"""The training loop, for both tasks (MaskDCPT pretraining, fine-tuning): torchrun DDP (NCCL on
GPUs, gloo on CPU), bf16 autocast on CUDA, gradient clipping, constant or cosine learning rate, an
optional EMA of the weights, TensorBoard, a progress bar, atomic checkpoints with everything a
resume needs (model, EMA, optimiser, scheduler, step, RNG, loader position), exact `--resume`,
named crash points, and the export (`export.pt`: the restoration network, EMA weights when kept).
Checkpoints are read with `torch.load(weights_only=True)`."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from training import masking
from training.config import TrainConfig, to_dict
from training.data import make_loader, preset_for
from training.finetune import Restoration
from training.pretrain import MaskDCPT
from uir25m import atomic, taxonomy

log = logging.getLogger("uir.train")
LAST = "last.pt"
EXPORT = "export.pt"


_HITS: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """Die here if UIR_CRASH_AT names this point, as `name` (first time) or `name@N` (N-th time)."""
    want = os.environ.get("UIR_CRASH_AT", "")
    if not want:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    point, _, nth = want.partition("@")
    if point == name and _HITS[name] == int(nth or 1):
        os._exit(77)


def _atomic_save(obj: Any, path: Path, crash_name: str | None = None) -> None:
    with atomic.atomic_open(path) as f:
        torch.save(obj, f)
        if crash_name:
            crashpoint(crash_name)  # the temporary file is written, the checkpoint not yet replaced


MODES = ("new", "resume", "overwrite")


class RunFolderError(ValueError):
    """A run folder that this run must not touch as asked."""


def _run_files(out: Path) -> list[Path]:
    """What a run writes into its folder (what `--mode overwrite` removes)."""
    return [p for p in [out / LAST, out / EXPORT, out / "tb", *sorted(out.glob("log-rank*.jsonl"))] if p.exists()]


def prepare_run_folder(out: Path, mode: str, rank: int = 0) -> None:
    """Make `out` ready for a run in `mode`: `new` refuses a folder that holds a run (its last.pt
    and export.pt would be replaced), `resume` needs its last.pt, `overwrite` removes the earlier
    run's files. Half-written files of an interrupted save (`.<name>.tmp-<pid>`) are removed."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    found = _run_files(out)
    if mode == "new" and found:
        raise RunFolderError(f"{out} holds a run ({', '.join(p.name for p in found)}): continue it with --resume, "
                             "start over with --mode overwrite, or give another --out")
    if mode == "resume" and not (out / LAST).is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {out / LAST}")
    if rank != 0:
        return
    out.mkdir(parents=True, exist_ok=True)
    if mode == "overwrite":
        for p in found:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for stale in out.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A run checkpoint (weights only), or a clear error for a file that is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise RunFolderError(f"{path}: not a readable run checkpoint ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else 'truncated?'})") from None
    need = {"step", "world", "essentials", "config", "model", "optimizer", "scheduler", "loader", "rng"}
    if not isinstance(state, dict) or need - set(state):
        missing = sorted(need - set(state)) if isinstance(state, dict) else ["everything"]
        raise RunFolderError(f"{path}: not a run checkpoint of this tool (missing {', '.join(missing)})")
    return state


def _setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def _classes(cfg: TrainConfig) -> list[int]:
    return [taxonomy.get(c).class_id for c in preset_for(cfg.data.subset, cfg.data.types).codes]


def _digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _task(cfg: TrainConfig) -> MaskDCPT | Restoration:
    if cfg.task == "pretrain":
        return MaskDCPT(cfg, classes=_classes(cfg))
    return Restoration(cfg)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Constant (the paper's pretraining) or cosine from each group's lr to min_lr at max_steps. The
    factors are functions of the step and this run's max_steps (not saved state), so a resume with a
    larger --max-steps stretches the rest of the curve instead of restarting a cosine period."""
    if cfg.optim.schedule != "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    def cosine(floor: float):
        return lambda s: floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(s, cfg.max_steps) / cfg.max_steps))

    return torch.optim.lr_scheduler.LambdaLR(opt, [cosine(min(1.0, cfg.optim.min_lr / g["lr"])) for g in opt.param_groups])


def _ema(cfg: TrainConfig, task: torch.nn.Module) -> torch.optim.swa_utils.AveragedModel | None:
    if cfg.ema_decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(task.backbone, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)


def train(cfg: TrainConfig, out: str | os.PathLike, *, resume: bool = False, mode: str | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Run cfg.task (pretrain or finetune) to cfg.max_steps; returns a summary (rank 0's view).
    `mode` new (default; refuses a folder holding a run), resume (= `resume=True`) or overwrite."""
    out = Path(out)
    mode = mode or ("resume" if resume else "new")
    resume = mode == "resume"
    rank, world, device = _setup_distributed()
    prepare_run_folder(out, mode, rank)
    if world > 1:
        dist.barrier()
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    task = _task(cfg).to(device)
    unused = cfg.task == "pretrain" and cfg.mask_ratio == 0  # without masking the mask tokens get no gradient
    model = torch.nn.parallel.DistributedDataParallel(task, find_unused_parameters=unused) if world > 1 else task
    ema = _ema(cfg, task)
    groups = task.param_groups()
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in groups],
                            betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
    sched = _scheduler(cfg, opt)
    d = cfg.data
    loader = make_loader(d.source, subset=d.subset, types=list(d.types) or None, ratios=d.ratios or None,
                         partition=d.partition, batch_size=d.batch_size, crop=d.crop, num_workers=d.num_workers,
                         seed=cfg.seed, rank=rank, world_size=world, endpoint_url=d.endpoint_url,
                         pin_memory=device.type == "cuda", fault_budget=d.fault_budget, window=d.window,
                         cache_dir=d.cache_dir, cache_limit=d.cache_limit, allow_revision_change=d.allow_revision_change,
                         online=d.online)
    step = 0
    ckpt = out / LAST
    if resume:
        state = read_checkpoint(ckpt)
        if state["essentials"] != cfg.essentials():
            raise ValueError(f"{ckpt} comes from a run with other data, model, optimiser or seed settings: "
                             "refusing to resume (start a new --out)")
        task.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        loader.load_state_dict(state["loader"][rank] if world == state["world"] else _refuse_world(state["world"], world))
        torch.set_rng_state(state["rng"]["cpu"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        step = int(state["step"])
        if cfg.optim.schedule == "cosine" and state["config"]["max_steps"] != cfg.max_steps:
            log.warning("resuming a cosine schedule with max_steps %d (was %d): the rest of the curve is stretched",
                        cfg.max_steps, state["config"]["max_steps"])
    writer = _writer(out) if rank == 0 else None
    rank_log = open(out / f"log-rank{rank}.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (closed in finally)
    bar = _bar(progress and rank == 0, step, cfg.max_steps, cfg.task)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (device.type == "cuda" and cfg.bf16) else _null()
    t0, last = time.perf_counter(), {}
    try:
        while step < cfg.max_steps:
            for batch in loader:
                model.train()
                batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
                with autocast:
                    res = model(batch, step, rank)
                opt.zero_grad(set_to_none=True)
                res["loss"].backward()
                if cfg.optim.grad_clip:
                    torch.nn.utils.clip_grad_norm_(task.parameters(), cfg.optim.grad_clip)
                opt.step()
                sched.step()
                if ema is not None:
                    ema.update_parameters(task.backbone)
                step += 1
                last = {"step": step, **{k: res[k].item() for k in task.log_keys}}
                rank_log.write(json.dumps({**last, **({"keys": batch["key"]} if cfg.log_keys else {})}) + "\n")
                rank_log.flush()
                if writer is not None:
                    _log(writer, cfg, step, res, task.log_keys, opt, groups, batch)
                bar.update(1)
                bar.set_postfix({k: f"{last[k]:.4f}" for k in task.log_keys[:2]} | {k: f"{last[k]:.2f}" for k in task.log_keys[2:]})
                crashpoint("after_step")
                if step % cfg.ckpt_every == 0 or step == cfg.max_steps:
                    _checkpoint(cfg, task, ema, opt, sched, loader, step, rank, world, device, ckpt)
                if step >= cfg.max_steps:
                    break
    finally:
        bar.close()
        rank_log.close()
        if writer is not None:
            writer.close()
    digest = _digest(task)
    with open(out / f"log-rank{rank}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"final_step": step, "weights": digest}) + "\n")
    if rank == 0:
        export = {"arch": cfg.model.arch, "arch_kwargs": dict(cfg.model.kwargs), "config": to_dict(cfg),
                  "state_dict": task.export(ema.module if ema is not None else None), "step": step,
                  "ema": ema is not None}
        _atomic_save(export, out / EXPORT)
    if world > 1:
        dist.barrier()
    return {"out": str(out), "step": step, "seconds": time.perf_counter() - t0, "weights": digest, **last}


def _refuse_world(before: int, now: int):
    raise ValueError(f"the checkpoint was written by {before} rank(s), this run has {now}: the loader position "
                     "cannot be carried over exactly")


def _checkpoint(cfg, task, ema, opt, sched, loader, step, rank, world, device, path: Path) -> None:
    """Every rank's loader position is gathered; rank 0 writes one atomic checkpoint."""
    loader_state = loader.state_dict()
    states = [loader_state]
    if world > 1:
        states = [None] * world
        dist.all_gather_object(states, loader_state)
    if rank == 0:
        state = {
            "step": step, "world": world, "essentials": cfg.essentials(), "config": to_dict(cfg),
            "model": task.state_dict(), "ema": ema.state_dict() if ema is not None else None,
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "loader": states,
            "rng": {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None},
        }
        _atomic_save(state, path, crash_name="during_checkpoint")
        crashpoint("after_checkpoint")
    if world > 1:
        dist.barrier()


def _writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: train anyway, say so once
        log.warning("TensorBoard is not installed (pip install tensorboard): no event files")
        return None
    return SummaryWriter(str(out / "tb"))


def _log(writer, cfg: TrainConfig, step: int, res: dict, keys, opt, groups, batch) -> None:
    if step % cfg.log_every == 0 or step == 1:
        for k in keys:
            writer.add_scalar(f"train/{k}", res[k].item(), step)
        for g, pg in zip(groups, opt.param_groups):
            writer.add_scalar(f"lr/{g['name']}", pg["lr"], step)
    if step % cfg.image_every == 0 or step == 1:
        n = min(4, batch["lq"].shape[0])
        lq = batch["lq"][:n].detach().float().cpu()
        if res.get("mask") is not None:
            lq = masking.remask(lq, res["mask"][:n].cpu())
        rows = torch.cat([lq, res["out"][:n].float().cpu().clamp(0, 1), batch["gt"][:n].float().cpu()], dim=-1)
        writer.add_images("samples/masked_lq | output | gt" if res.get("mask") is not None else "samples/lq | output | gt",
                          rows, step)


def _bar(enabled: bool, start: int, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", desc=desc, disable=not enabled, dynamic_ncols=True)


pretrain = train  # the name the pretraining tests and tools use


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
