"""The streaming loader: UIR shards in, mixed, aligned, augmented batches out.

Modules, along the path a sample takes:
- urls: reading a dataset or shard wherever it is (a folder, file://, s3://, hf://, pipe:);
- streams: the catalogue, one stream per (type, source) of the preset, in flat arrays;
- sampling: the quota scheduler (smooth weighted round-robin), seeds, the deal of shards;
- readers: who reads what (ranks, nodes, workers) and the walk over each stream;
- augment: paired crop, flips, rot90;
- online: making online samples (format 1.2) from stored clean images;
- dataset: each reader's endless stream of samples, faults and the fault budget;
- loader: `make_loader` and the DataLoader that knows where it is (state, resume).
"""
from training.data.dataset import FAULT_BUDGET, FaultBudgetError, StrictError, UIRDataset, collate
from training.data.loader import UIRDataLoader, make_loader, preset_for, share_lines
from training.data.readers import decode
from training.data.streams import Catalog, Stream, catalog_from_dataset, catalog_from_shards, expand_urls

__all__ = ["FAULT_BUDGET", "Catalog", "FaultBudgetError", "Stream", "StrictError", "UIRDataLoader", "UIRDataset",
           "catalog_from_dataset", "catalog_from_shards", "collate", "decode", "expand_urls", "make_loader",
           "preset_for", "share_lines"]
