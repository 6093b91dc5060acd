"""The 19 degradation types of UIR-2.5M (format, UIR format v1).

Class ids are fixed here and never derived from file or YAML order: a dataset built today and a
checkpoint trained next year must agree on what class 7 means.
"""
from __future__ import annotations

from dataclasses import dataclass

FAMILIES: tuple[str, ...] = ("noise", "blur", "compression", "weather", "others", "mixed")
GROUPS: tuple[str, ...] = ("single", "mixed")


@dataclass(frozen=True)
class DegradationType:
    """One taxonomy entry."""

    class_id: int
    code: str
    name: str
    family: str
    group: str
    components: tuple[str, ...] = ()  # the single types a mixed type combines


TYPES: tuple[DegradationType, ...] = (
    DegradationType(0, "gn", "Gaussian / Poisson / salt-and-pepper noise", "noise", "single"),
    DegradationType(1, "rn", "real noise", "noise", "single"),
    DegradationType(2, "mb", "motion blur", "blur", "single"),
    DegradationType(3, "db", "defocus blur", "blur", "single"),
    DegradationType(4, "gb", "Gaussian and sinc blur", "blur", "single"),
    DegradationType(5, "j", "JPEG compression", "compression", "single"),
    DegradationType(6, "h", "haze", "weather", "single"),
    DegradationType(7, "rs", "rain streak", "weather", "single"),
    DegradationType(8, "rd", "raindrop", "weather", "single"),
    DegradationType(9, "rsd", "rain streak + raindrop", "weather", "single"),
    DegradationType(10, "s", "snow", "weather", "single"),
    DegradationType(11, "ms", "mosaic", "others", "single"),
    DegradationType(12, "ll", "low-light", "others", "single"),
    DegradationType(13, "mr", "moiré", "others", "single"),
    DegradationType(14, "b_j", "blur + JPEG", "mixed", "mixed", ("mb", "j")),
    DegradationType(15, "b_r", "blur + rain", "mixed", "mixed", ("db", "rd")),
    DegradationType(16, "b_ll_n", "blur + low-light + noise", "mixed", "mixed", ("mb", "ll", "gn")),
    DegradationType(
        17, "ll_h_r_s", "low-light / haze / rain / snow combinations", "mixed", "mixed",
        ("ll", "h", "rs", "s"),
    ),
    DegradationType(
        18, "ds_n_b_j", "downsample + noise + blur + JPEG", "mixed", "mixed", ("gb", "gn", "j"),
    ),
)

NUM_CLASSES: int = len(TYPES)
CODES: tuple[str, ...] = tuple(t.code for t in TYPES)
_BY_CODE: dict[str, DegradationType] = {t.code: t for t in TYPES}
_BY_ID: dict[int, DegradationType] = {t.class_id: t for t in TYPES}


class UnknownTypeError(KeyError, ValueError):
    """A degradation code or class id that is not in the taxonomy."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0])


def get(code: str) -> DegradationType:
    """The taxonomy entry for `code`; a clear error listing the valid codes otherwise."""
    try:
        return _BY_CODE[code]
    except (KeyError, TypeError):
        raise UnknownTypeError(
            f"unknown degradation code {code!r}; valid codes: {', '.join(CODES)}"
        ) from None


def by_id(class_id: int) -> DegradationType:
    """The taxonomy entry with this class id."""
    try:
        return _BY_ID[int(class_id)]
    except (KeyError, TypeError, ValueError):
        raise UnknownTypeError(
            f"unknown class id {class_id!r}; valid ids: 0..{NUM_CLASSES - 1}"
        ) from None


def parse_codes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Parse `"gn,rs, h"` (or a list) into validated codes, in the order given, without repeats."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        code = str(item).strip()
        if not code:
            continue
        get(code)
        if code not in out:
            out.append(code)
    if not out:
        raise UnknownTypeError(f"no degradation codes given; valid codes: {', '.join(CODES)}")
    return tuple(out)


def in_group(group: str) -> tuple[str, ...]:
    """Codes of one group (`single` or `mixed`), in class-id order."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; valid groups: {', '.join(GROUPS)}")
    return tuple(t.code for t in TYPES if t.group == group)


def _check() -> None:
    assert [t.class_id for t in TYPES] == list(range(NUM_CLASSES))
    assert len(set(CODES)) == NUM_CLASSES
    for t in TYPES:
        assert t.family in FAMILIES and t.group in GROUPS
        assert (t.group == "mixed") == bool(t.components) == (t.family == "mixed")
        assert all(_BY_CODE[c].group == "single" for c in t.components)


_check()
