"""training: reads UIR shards and trains on them (streaming loader, MaskDCPT pretraining,
fine-tuning, evaluation). Imports only the format side of uir25m: taxonomy, manifest, subsets.

Modules: cli (`uir-train`).
"""
