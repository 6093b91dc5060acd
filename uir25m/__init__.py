"""uir25m: build UIR-2.5M (paired image restoration data, 19 degradation types) as WebDataset
shards with label manifests.

Modules along the data path: taxonomy (the 19 types) -> packaged (YAML shipped in the package)
-> recipes -> sources (input records) -> degrade (the engine) -> codec (decode, normalise,
encode) -> manifest (format spec, parquet) -> tarwriter -> shards (tasks, worker, reading) ->
executors -> build (resume, merge, accounting) -> demo -> subsets, stats, preview -> cli.
"""
__version__ = "0.1.0"
