"""Training configuration: frozen dataclasses, read from YAML (`training/configs/*.yaml` or a path)
with `key=value` overrides on dotted paths; unknown keys are errors, nothing is mutated later."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration that does not validate."""


@dataclass(frozen=True)
class DataConfig:
    source: str = "demo-data"  # a dataset folder, s3://bucket/prefix, hf://user/name, or shards
    subset: str = "all"  # a preset: 5d, 12d, single, mixed, all
    types: tuple[str, ...] = ()  # instead of a preset: these codes, any source
    ratios: dict[str, float] = field(default_factory=dict)  # per-type ratio overrides
    partition: str = "train"
    batch_size: int = 16  # per rank
    crop: int = 256
    num_workers: int = 4
    endpoint_url: str | None = None
    fault_budget: int = 64  # this many failed samples in a row of one stream end the run with an error
    window: int = 2  # shards of a stream a node walks at a time (the shuffle scope)
    cache_dir: str | None = None  # remote data: the node's shard cache (default $XDG_CACHE_HOME/uir25m/shards)
    cache_limit: int | None = None  # bytes; default twice what the loader holds at once
    allow_revision_change: bool = False  # resume a run whose data was read at another hf:// commit
    online: str = "fixed"  # online samples (an --online build): the label's params, or "fresh" ones every epoch


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "nafnet_w64"
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the architecture's builder
    classifier_blocks: int = 2  # bottlenecks per classifier stage
    compile_classifier: bool = False  # run the classifier through torch.compile (same numbers, faster on GPUs)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4  # restoration network, mask tokens and its output head
    lr_classifier: float = 1e-4  # the degradation classifier
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None  # max gradient norm; None: no clipping
    schedule: str = "constant"  # or "cosine": from lr down to min_lr over max_steps
    min_lr: float = 1e-6


@dataclass(frozen=True)
class TrainConfig:
    """One training run: `task` pretrain (MaskDCPT) or finetune (restoration from an export)."""

    name: str = "maskdcpt"
    task: str = "pretrain"
    init: str | None = None  # finetune: the export (or checkpoint) the network starts from; None: scratch
    ema_decay: float | None = None  # keep an exponential moving average of the weights (exported)
    seed: int = 0
    max_steps: int = 100_000
    mask_patch: int = 16
    mask_ratio: float = 0.5  # 0: DCPT-style, no masking
    mask_backend: str = "dense"  # or "spconv": submanifold convs in the masked encoder (same numbers)
    focal_weight: float = 1.0  # lambda in L = L1 + lambda x focal
    focal_gamma: float = 2.0
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)
    log_every: int = 10
    ckpt_every: int = 1000
    image_every: int = 500  # sample images to TensorBoard
    log_keys: bool = False  # write the sample keys of every step to the per-rank log (for audits)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def essentials(self) -> str:
        """What a resumed run must share with the run it continues (not max_steps or logging)."""
        d = to_dict(self)
        keep = {k: d[k] for k in ("task", "init", "ema_decay", "seed", "mask_patch", "mask_ratio", "focal_weight",
                                  "focal_gamma", "data", "model", "optim")}
        keep["data"] = {k: v for k, v in keep["data"].items() if k not in _NOT_ESSENTIAL_DATA
                        and not (k == "online" and v == "fixed")}  # the default: runs from before it resume
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


# how the run reacts to bad data and where it caches, not what it reads
_NOT_ESSENTIAL_DATA = ("fault_budget", "cache_dir", "cache_limit", "allow_revision_change")


def to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple) and value is not None:
            kwargs[name] = tuple(value) if isinstance(value, (list, tuple)) else tuple(str(value).split(","))
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        tree = tree.setdefault(p, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
    tree[parts[-1]] = value


def config_path(name: str) -> Path | Any:
    """A config by path, or by name from training/configs."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    packaged = resources.files("training.configs").joinpath(f"{name}.yaml")
    if packaged.is_file():
        return packaged
    known = sorted(q.name[:-5] for q in resources.files("training.configs").iterdir() if q.name.endswith(".yaml"))
    raise FileNotFoundError(f"no config {name!r}: give a YAML path or one of {', '.join(known)}")


PretrainConfig = TrainConfig  # the name the pretraining code and tools use


def load(name: str, overrides: Sequence[str] = ()) -> TrainConfig:
    """A config from YAML plus `a.b=value` overrides (values parsed as YAML)."""
    path = config_path(name)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected key=value")
        _set(data, key.strip(), yaml.safe_load(value))
    cfg = _build(TrainConfig, data, str(name))
    _validate(cfg, str(name))
    return cfg


def from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """A config from its dict form (`to_dict`, e.g. a checkpoint's `config`), validated."""
    cfg = _build(TrainConfig, data, where)
    _validate(cfg, where)
    return cfg


def _validate(cfg: TrainConfig, where: str) -> None:
    if cfg.task not in ("pretrain", "finetune"):
        raise ConfigError(f"{where}: task must be pretrain or finetune, not {cfg.task!r}")
    if cfg.optim.schedule not in ("constant", "cosine"):
        raise ConfigError(f"{where}: optim.schedule must be constant or cosine, not {cfg.optim.schedule!r}")
    if cfg.data.online not in ("fixed", "fresh"):
        raise ConfigError(f"{where}: data.online must be fixed or fresh, not {cfg.data.online!r}")
    if cfg.mask_backend not in ("dense", "spconv"):
        raise ConfigError(f"{where}: mask_backend must be dense or spconv, not {cfg.mask_backend!r}")
    if cfg.ema_decay is not None and not 0.0 < cfg.ema_decay < 1.0:
        raise ConfigError(f"{where}: ema_decay must be in (0, 1)")
    positive = {"data.batch_size": cfg.data.batch_size, "data.crop": cfg.data.crop, "max_steps": cfg.max_steps,
                "mask_patch": cfg.mask_patch, "log_every": cfg.log_every, "ckpt_every": cfg.ckpt_every,
                "image_every": cfg.image_every, "data.fault_budget": cfg.data.fault_budget, "data.window": cfg.data.window}
    for key, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: {key} must be a whole number >= 1, not {value!r}")
    if isinstance(cfg.data.num_workers, bool) or not isinstance(cfg.data.num_workers, int) or cfg.data.num_workers < 0:
        raise ConfigError(f"{where}: data.num_workers must be a whole number >= 0, not {cfg.data.num_workers!r}")
    if not isinstance(cfg.mask_ratio, (int, float)) or not 0.0 <= cfg.mask_ratio < 1.0:
        raise ConfigError(f"{where}: mask_ratio must be in [0, 1), not {cfg.mask_ratio!r}")
    for key, value in (("optim.lr", cfg.optim.lr), ("optim.lr_classifier", cfg.optim.lr_classifier)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{where}: {key} must be a positive number, not {value!r}")
