"""Moved to `training.data.urls`; this name keeps older imports working (it is that module)."""
import sys

from training.data import urls

sys.modules[__name__] = urls
