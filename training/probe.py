"""The KNN degradation-classification probe of MaskDCPT §III (DCPT's `knn_gen.py` + `knn.py`): how
well do a restoration network's features tell degradation types apart, before any classifier?

The paper's protocol: 5 degradations (haze, rain, Gaussian noise, motion blur, low-light) x 100
LQ images; each image center-cropped to 128 x 128; the features *before the restoration head* of the
network flattened to one vector (no pooling: C x 128 x 128 values, about a million for a width-64
NAFNet); a K-nearest-neighbour classifier (scikit-learn's default: k = 5, Euclidean distance, uniform
vote) fitted on a random 2/3 of the images and scored on the other third (`train_test_split(...,
test_size=0.33, random_state=seed)`); accuracy mean ± std over the seeds 0, 223, 929, 1234, 10086.
It compares a trained network against a randomly initialised one (the authors re-initialise every
conv / linear weight with `kaiming_uniform_(a=2)` and zero the biases).

Here: the head's input is captured with a forward pre-hook on `getattr(model, model.head_name)`;
images smaller than the crop are reflect-padded first; optional average pooling (`pool`) and L2
normalisation (`normalize`) are off by default, as in the paper (500 images of a width-64 NAFNet
then hold 2 GiB of float32 features; `pool=4` cuts that 16-fold). The KNN is written out (no
scikit-learn): squared Euclidean distances from one float64 Gram matrix shared by all seeds; equal
distances are ordered by sample index; a tied vote goes to the tied class whose member is nearest
(`tie_break="smallest"`: the smallest class index, scikit-learn's rule). The split draws
`RandomState(seed).permutation(n)` and takes the first ceil(test_size * n) as test, the rest as
train, as scikit-learn's non-stratified `train_test_split` does (checked against scikit-learn 1.9:
same splits, and with `tie_break="smallest"` the same predictions). Std is the population std
(ddof 0) over the seeds. Differences from the authors' script: our images are RGB (theirs were read
BGR by OpenCV) and come from UIR pairs, not from the paper's five source datasets.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training import archs
from training.restore import size_multiple

__all__ = ["PAPER_TYPES", "SEEDS", "center_crop", "extract_features", "format_markdown", "knn_evaluate",
           "knn_predict", "probe", "random_model", "split_indices", "squared_distances"]

# the paper's five: haze, rain streak, Gaussian noise, motion blur, low-light
PAPER_TYPES: tuple[str, ...] = ("h", "rs", "gn", "mb", "ll")
SEEDS: tuple[int, ...] = (0, 223, 929, 1234, 10086)  # the authors' `train_test_split` random states


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central `size` x `size` window of an H x W (x C) image; a side shorter than `size` is first
    reflect-padded on both sides (repeatedly for very small images)."""
    while img.shape[0] < size or img.shape[1] < size:
        ph, pw = (max(0, min(size - n, n - 1)) for n in img.shape[:2])
        if ph == pw == 0:  # a 1-pixel side cannot be reflected: repeat it
            ph, pw = (size - n if n == 1 else 0 for n in img.shape[:2])
            mode = "edge"
        else:
            mode = "reflect"
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)) + ((0, 0),) * (img.ndim - 2)
        img = np.pad(img, pads, mode=mode)
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return img[top:top + size, left:left + size]


@torch.no_grad()
def extract_features(model: nn.Module, images: Iterable[np.ndarray], *, crop: int = 128, pool: int = 1,
                     normalize: bool = False, device: torch.device | str = "cpu", batch_size: int = 8,
                     progress: bool = True, total: int | None = None) -> torch.Tensor:
    """N x D float32 (CPU): for each H x W x 3 uint8 RGB image, the input of the model's restoration
    head on its center crop, average-pooled by `pool` (1 = none), flattened, optionally L2-normalised."""
    head_name = getattr(model, "head_name", None)
    if not head_name or not isinstance(getattr(model, head_name, None), nn.Module):
        raise ValueError(f"{type(model).__name__} names no restoration head module (`head_name`)")
    multiple = size_multiple(model)
    if crop < 1 or crop % multiple:
        raise ValueError(f"crop {crop} must be a positive multiple of {type(model).__name__}'s size multiple "
                         f"{multiple}")
    if pool < 1:
        raise ValueError(f"pool must be >= 1, got {pool}")
    model.eval()
    captured: list[torch.Tensor] = []
    handle = getattr(model, head_name).register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    batches: list[torch.Tensor] = []

    def run(batch: list[np.ndarray]) -> None:
        x = torch.from_numpy(np.stack(batch)).to(device).permute(0, 3, 1, 2).float().div_(255)
        captured.clear()
        model(x)
        if len(captured) != 1:
            raise ValueError(f"{type(model).__name__}.{head_name} ran {len(captured)} times in one forward pass, "
                             "expected once")
        feat = captured.pop()
        if pool > 1:
            feat = F.avg_pool2d(feat, pool)
        feat = feat.flatten(1).float()
        if normalize:
            feat = F.normalize(feat, dim=1)
        batches.append(feat.cpu())

    try:
        batch: list[np.ndarray] = []
        for img in tqdm(images, total=total, desc="probe features", unit="img", disable=not progress):
            if img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"expected H x W x 3 images, got shape {img.shape}")
            batch.append(np.ascontiguousarray(center_crop(img, crop)))
            if len(batch) == batch_size:
                run(batch)
                batch = []
        if batch:
            run(batch)
    finally:
        handle.remove()
    if not batches:
        return torch.zeros(0, 0)
    out = torch.empty(sum(len(b) for b in batches), batches[0].shape[1])
    row = 0
    while batches:  # copy batch by batch so the features are never held twice
        b = batches.pop(0)
        out[row:row + len(b)] = b
        row += len(b)
    return out


def squared_distances(features: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """N x N float64 squared Euclidean distances between the rows of `features`, through one Gram
    matrix accumulated over column chunks (memory: N x chunk doubles at a time)."""
    n, d = features.shape
    gram = torch.zeros(n, n, dtype=torch.float64)
    for start in range(0, d, chunk):
        part = features[:, start:start + chunk].to(torch.float64)
        gram += part @ part.T
    sq = gram.diagonal().clone()
    return (sq[:, None] + sq[None, :] - 2 * gram).clamp_(min=0).fill_diagonal_(0)


def knn_predict(distances: torch.Tensor, train_labels: torch.Tensor, k: int, num_classes: int | None = None,
                tie_break: str = "nearest") -> torch.Tensor:
    """Majority vote of the `k` nearest training samples for each test row of `distances` (T x R;
    labels are class indices). Equal distances: the lower training index is nearer. Tied votes:
    `"nearest"`: the tied class with the nearest neighbour among the k; `"smallest"`: the smallest
    class index (scikit-learn's rule)."""
    if not 1 <= k <= distances.shape[1]:
        raise ValueError(f"k = {k} needs between 1 and {distances.shape[1]} (the training samples) neighbours")
    if tie_break not in ("nearest", "smallest"):
        raise ValueError(f"unknown tie_break {tie_break!r}; use 'nearest' or 'smallest'")
    num_classes = int(train_labels.max()) + 1 if num_classes is None else num_classes
    order = torch.sort(distances, dim=1, stable=True).indices[:, :k]
    nbr = train_labels[order]  # T x k, nearest first
    votes = F.one_hot(nbr, num_classes).sum(1)  # T x C
    if tie_break == "smallest":
        return votes.argmax(1)  # the first maximum
    top = votes == votes.max(1, keepdim=True).values
    first = top.gather(1, nbr).to(torch.int8).argmax(1, keepdim=True)  # the nearest neighbour of a top class
    return nbr.gather(1, first).squeeze(1)


def split_indices(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: a `RandomState(seed)` permutation, the first ceil(test_size * n) for test."""
    perm = np.random.RandomState(seed).permutation(n)
    n_test = math.ceil(test_size * n)
    return perm[n_test:], perm[:n_test]


def _min_samples(k: int, test_size: float) -> int:
    n = k + 1
    while n - math.ceil(test_size * n) < k:
        n += 1
    return n


def knn_evaluate(features: torch.Tensor, labels: Sequence[str], *, k: int = 5, seeds: Sequence[int] = SEEDS,
                 test_size: float = 0.33, tie_break: str = "nearest") -> dict[str, Any]:
    """KNN accuracy over seeded train/test splits: `accuracy` {mean, std}, `per_seed`, `per_class`
    {code: {mean, std, n}}, `classes` (class indices in first-seen order), `n`, `feature_dim` and
    the settings."""
    n = len(labels)
    if features.ndim != 2 or features.shape[0] != n:
        raise ValueError(f"features {tuple(features.shape)} do not match {n} labels")
    classes = list(dict.fromkeys(labels))
    if len(classes) < 2:
        raise ValueError(f"the KNN probe needs at least two degradation types; got {n} samples of "
                         f"{classes[0] if classes else 'no type'!r}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if k < 1 or n - math.ceil(test_size * n) < k:
        raise ValueError(f"{n} samples are too few for k = {k} at test_size {test_size}: the training split must hold "
                         f"at least k samples (need at least {_min_samples(max(k, 1), test_size)} samples)")
    if not seeds:
        raise ValueError("no seeds given")
    y = torch.tensor([classes.index(c) for c in labels])
    dist = squared_distances(features)
    per_seed: list[dict[str, Any]] = []
    class_acc: dict[str, list[float]] = {c: [] for c in classes}
    for seed in seeds:
        train, test = (torch.from_numpy(i) for i in split_indices(n, test_size, seed))
        pred = knn_predict(dist[test][:, train], y[train], k, len(classes), tie_break)
        correct = pred == y[test]
        per_seed.append({"seed": int(seed), "accuracy": float(correct.double().mean()), "n_train": len(train),
                         "n_test": len(test)})
        for i, c in enumerate(classes):
            mine = y[test] == i
            if mine.any():
                class_acc[c].append(float(correct[mine].double().mean()))
    accs = np.array([r["accuracy"] for r in per_seed])
    counts = {c: int((y == i).sum()) for i, c in enumerate(classes)}
    return {
        "accuracy": {"mean": float(accs.mean()), "std": float(accs.std())},
        "per_seed": per_seed,
        "per_class": {c: {"mean": float(np.mean(a)) if a else None, "std": float(np.std(a)) if a else None,
                          "n": counts[c]} for c, a in class_acc.items()},
        "classes": classes, "n": n, "feature_dim": int(features.shape[1]),
        "k": k, "seeds": [int(s) for s in seeds], "test_size": test_size, "metric": "euclidean",
        "tie_break": tie_break,
    }


def probe(model: nn.Module, pairs: Iterable[Any], *, crop: int = 128, pool: int = 1, normalize: bool = False,
          k: int = 5, seeds: Sequence[int] = SEEDS, test_size: float = 0.33, tie_break: str = "nearest",
          device: torch.device | str = "cpu", batch_size: int = 8, progress: bool = True) -> dict[str, Any]:
    """The paper's KNN probe on `pairs` (anything with `.lq` H x W x 3 uint8 RGB and `.code`, e.g.
    `pairs.iter_pairs(...)`): features of each LQ image (see `extract_features`), labels = the
    pair's degradation code; returns `knn_evaluate`'s report plus crop, pool and normalize."""
    labels: list[str] = []

    def images() -> Iterable[np.ndarray]:
        for pair in pairs:
            labels.append(pair.code)
            yield pair.lq

    model = model.to(device)
    features = extract_features(model, images(), crop=crop, pool=pool, normalize=normalize, device=device,
                                batch_size=batch_size, progress=progress)
    if not labels:
        raise ValueError("the KNN probe got no pairs")
    report = knn_evaluate(features, labels, k=k, seeds=seeds, test_size=test_size, tie_break=tie_break)
    report.update(crop=crop, pool=pool, normalize=normalize)
    return report


def random_model(arch: str, *, seed: int = 0, init: str = "authors", **kwargs: Any) -> nn.Module:
    """A randomly initialised `arch` (the probe's baseline), reproducible from `seed` without touching
    the global RNG. `init="authors"` re-initialises every Conv2d / Linear weight with
    `kaiming_uniform_(a=2)` and zeroes its bias, as DCPT's `knn_gen.py`; `"default"` keeps the
    architecture's own initialisation."""
    if init not in ("authors", "default"):
        raise ValueError(f"unknown init {init!r}; use 'authors' or 'default'")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = archs.create_arch(arch, **kwargs)
        if init == "authors":
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_uniform_(m.weight, a=2)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
    return model.eval()


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def format_markdown(report: dict[str, Any], title: str = "KNN degradation probe") -> str:
    """A Markdown summary of a `probe` / `knn_evaluate` report."""
    acc = report["accuracy"]
    lines = [f"### {title}", "",
             f"accuracy **{_pct(acc['mean'])} ± {_pct(acc['std'])} %** (k = {report['k']}, {report['metric']}, "
             f"test share {report['test_size']}, {len(report['per_seed'])} seeds; {report['n']} images, "
             f"{report['feature_dim']} features each"
             + (f", crop {report['crop']}, pool {report['pool']}" if "crop" in report else "")
             + (", L2-normalised" if report.get("normalize") else "") + ")", "",
             "| type | images | accuracy % |", "|---|---|---|"]
    for code, row in report["per_class"].items():
        lines.append(f"| {code} | {row['n']} | {_pct(row['mean'])} ± {_pct(row['std'])} |")
    lines += ["", "| seed | train | test | accuracy % |", "|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['n_train']} | {r['n_test']} | {_pct(r['accuracy'])} |" for r in report["per_seed"]]
    return "\n".join(lines) + "\n"
