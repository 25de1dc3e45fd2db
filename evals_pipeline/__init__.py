"""evals_pipeline: an evaluation pipeline for LLM products (Dagster + DuckDB)."""
