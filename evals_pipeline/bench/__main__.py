"""Entry point: `python -m evals_pipeline.bench sampling --rows 10000000`."""

from __future__ import annotations

import argparse
import json

from evals_pipeline.bench import daily, ingest, judging, review, sampling


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals_pipeline.bench")
    sub = parser.add_subparsers(dest="bench", required=True)
    sampling.add_arguments(sub.add_parser("sampling", help=sampling.__doc__.splitlines()[0]))
    judging.add_arguments(sub.add_parser("judging", help=judging.__doc__.splitlines()[0]))
    review.add_arguments(sub.add_parser("review", help=review.__doc__.splitlines()[0]))
    ingest.add_arguments(sub.add_parser("ingest", help=ingest.__doc__.splitlines()[0]))
    daily.add_arguments(sub.add_parser("daily", help=daily.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    runs = {"sampling": sampling.run, "judging": judging.run, "review": review.run}
    result = {**runs, "ingest": ingest.run, "daily": daily.run}[args.bench](args)
    for line in result if isinstance(result, list) else [result]:
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
