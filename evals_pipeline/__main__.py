"""`python -m evals_pipeline ...`: the `evals` command line."""

from evals_pipeline.cli import main

raise SystemExit(main())
