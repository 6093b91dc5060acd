"""uir25m: build UIR-2.5M (paired image restoration data, 19 degradation types) as WebDataset
shards with label manifests.

Modules along the data path: atomic (durable writes), taxonomy (the 19 types), packaged (YAML
shipped in the package), codec (decode, normalise, encode) -> degrade (the engine) -> recipes ->
sources (input records) -> manifest (format spec, parquet) -> tarwriter -> shards (tasks, worker, reading) ->
executors -> build (resume, merge, accounting) -> demo -> subsets, stats, preview -> cli.
"""
__version__ = "0.1.0"
