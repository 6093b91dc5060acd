"""training: reads UIR shards and trains on them (streaming loader, MaskDCPT pretraining,
fine-tuning, evaluation). Imports only the format side of uir25m: atomic, taxonomy, manifest, reader, subsets.

Modules: urls (local, s3://, hf:// and pipe: reads), sampling (the quota scheduler, reader
portions), augment (paired crop, flips, rot90), data (`make_loader`: streams, resume, faults),
cli (`uir-train`).
"""
