"""`python -m evals_pipeline.review` (what `make review` runs): serve the review app."""

from evals_pipeline.review.app import main

main()
