"""Moved to `training.data.sampling`; this name keeps older imports working (it is that module)."""
import sys

from training.data import sampling

sys.modules[__name__] = sampling
