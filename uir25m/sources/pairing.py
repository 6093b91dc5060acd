"""Pairing shared by the layout adapters: each LQ file maps to GT candidates; the first that
exists is its partner, an LQ with none is rejected as `missing_partner`."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from uir25m.sources.paths import FileIndex


@dataclass(frozen=True)
class Pair:
    lq: str  # "" for a clean-only image
    gt: str
    variant: str = ""  # "" = the part's variant


@dataclass
class PartScan:
    """What one part found: its pairs, the LQ files it had to reject, the GT-side files it covers
    (a covered GT that no selected LQ uses is a `missing_partner`), and notes for the user."""

    pairs: list[Pair] = field(default_factory=list)
    rejects: list[tuple[str, str, str]] = field(default_factory=list)  # (relpath, reason, detail)
    gt_files: set[str] = field(default_factory=set)
    lq_files: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> set[str]:
        return self.lq_files | self.gt_files | {p for p, _, _ in self.rejects}


def pair(
    index: FileIndex, lq_files: Iterable[str], candidates: Callable[[str], list[str]],
    gt_files: Iterable[str] = (), variant: str = "",
) -> PartScan:
    """Pair each LQ with the first of its GT candidates that exists."""
    scan = PartScan(gt_files=set(gt_files))
    for lq in lq_files:
        scan.lq_files.add(lq)
        cands = candidates(lq)
        if not cands:
            scan.rejects.append((lq, "missing_partner", "the file name does not follow the pairing rule"))
            continue
        gt = next((c for c in cands if c in index), None)
        if gt is None:
            scan.rejects.append((lq, "missing_partner", f"no GT at {' or '.join(cands)}"))
            continue
        scan.pairs.append(Pair(lq, gt, variant))
        scan.gt_files.add(gt)
    return scan
