"""uir25m: build UIR-2.5M (paired image restoration data, 19 degradation types) as WebDataset
shards with label manifests.

Modules along the data path, each importing only those before it: atomic (durable writes),
taxonomy (the 19 types), packaged (YAML shipped in the package), codec (decode, normalise,
encode), manifest (the format spec, parquet I/O), reader (reading a built dataset as untrusted
input: paths, spans, pixel limits, tar members), degrade (the engine), sources (manifests, layout
adapters, discovery under --root), catalog, recipes, tarwriter, shards (tasks, the worker),
executors, build (resume, merge, accounting), estimate, planner, demo, subsets (presets), stats,
card, subsetting, publish, preview, verify, cli.
"""
__version__ = "0.1.0"
