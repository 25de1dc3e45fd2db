"""The review app's side of the label files: append one line per decision, read all back.

Each annotator writes only their own file (`data/labels/review-<annotator>.jsonl`), opened in
append mode under an exclusive lock and fsynced per line, so two experts never overwrite each
other, two tabs of one expert interleave whole lines, and a crash loses at most the case on
screen. Reading goes through the calibration pipeline's own loader (`load_labels`): the app
sees exactly what the pipeline will store or quarantine.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from evals_pipeline.calibration.labels import LABEL_SUFFIXES, load_labels
from evals_pipeline.records import HUMAN_LABELS, QUARANTINED_LABELS
from evals_pipeline.review.taxonomy import TaxonomyError, normalize_name
from evals_pipeline.warehouse import ensure_tables

ANNOTATOR_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 _.\-]{0,62}[A-Za-z0-9])?$")
MAX_CRITIQUE_CHARS = 5_000


class LabelError(ValueError):
    """A label the app refuses to write; the message says what to fix."""


def check_annotator(name: str) -> str:
    """The canonical annotator id of a typed name: lower case, runs of spaces, dots, dashes
    and underscores as one dash ("Dana Smith", "dana.smith" and "DANA_SMITH" are one person,
    `dana-smith`, with one label file). Names that start or end with punctuation ("dana.")
    or use other characters are refused: they would look distinct and be the same."""
    name = (name or "").strip()
    if not ANNOTATOR_RE.match(name):
        raise LabelError(
            "annotator name: 1-64 letters or digits, with spaces, dots, dashes or underscores "
            "only between them (e.g. dana or dana.smith)"
        )
    return re.sub(r"[ _.\-]+", "-", name.lower())


def annotator_file(folder: Path, annotator: str) -> Path:
    return folder / f"review-{check_annotator(annotator)}.jsonl"


def make_label(
    item_id: str, annotator: str, verdict: str, critique: str, failure_mode: str, queue: str
) -> dict[str, str | None]:
    """A label record in the documented format, validated as the pipeline validates it."""
    verdict = (verdict or "").strip().lower()
    if verdict not in ("pass", "fail"):
        raise LabelError(f"verdict must be pass or fail, not {verdict!r}")
    critique = (critique or "").strip()
    if verdict == "fail" and not critique:
        raise LabelError("a fail needs a critique: say what is wrong with the output")
    if len(critique) > MAX_CRITIQUE_CHARS:
        raise LabelError(
            f"critique is {len(critique):,} characters; keep it under {MAX_CRITIQUE_CHARS:,}"
        )
    mode = None
    if (failure_mode or "").strip():
        try:
            mode = normalize_name(failure_mode)
        except TaxonomyError as exc:
            raise LabelError(str(exc)) from exc
    return {
        "subject_id": item_id,
        "annotator": check_annotator(annotator),
        "verdict": verdict,
        "critique": critique,
        "failure_mode": mode if verdict == "fail" else None,
        "labelled_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "queue": queue,
        "source": "review_app",
    }


def append_label(folder: Path, record: dict[str, str | None]) -> Path:
    """Append one record to its annotator's file, durably (flushed and fsynced)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = annotator_file(folder, str(record["annotator"]))
    append_jsonl(path, record)
    return path


def append_jsonl(path: Path, record: dict[str, object]) -> None:
    """Append one JSON line to `path` under an exclusive lock, flushed and fsynced: two tabs
    interleave whole lines, and a crash loses at most this line."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            # A previous crash may have left a partial last line: start on a fresh line so
            # that only the broken line is quarantined, never this one.
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _state(folder: Path) -> tuple:
    if not folder.is_dir():
        return ()
    return tuple(
        (p.name, p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in LABEL_SUFFIXES
    )


class LabelReader:
    """All label files loaded into an in-memory DuckDB by the pipeline's loader, reloaded
    only when a file changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._state: tuple | None = None
        self._conn: duckdb.DuckDBPyConnection | None = None

    def _fresh(self) -> duckdb.DuckDBPyConnection:
        state = _state(self.folder)
        if self._conn is None or state != self._state:
            conn = duckdb.connect(":memory:")
            conn.execute("SET TimeZone = 'UTC'")
            ensure_tables(conn, [HUMAN_LABELS, QUARANTINED_LABELS])
            load_labels(conn, self.folder)
            if self._conn is not None:
                self._conn.close()
            self._conn, self._state = conn, state
        return self._conn

    def query(self, sql: str, params: list | dict | None = None) -> list[tuple]:
        with self._lock:
            return self._fresh().execute(sql, params or []).fetchall()

    def frame(self, sql: str, params: list | dict | None = None) -> pd.DataFrame:
        with self._lock:
            return self._fresh().execute(sql, params or []).df()
