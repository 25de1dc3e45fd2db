"""Benchmarks: `python -m evals_pipeline.bench <name> ...`. Each prints a JSON line last."""
