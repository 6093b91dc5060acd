"""Moved to `training.data.augment`; this name keeps older imports working (it is that module)."""
import sys

from training.data import augment

sys.modules[__name__] = augment
