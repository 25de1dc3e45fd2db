"""The review app's storage: the queues, read from the analysts' snapshot (read-only, reopened
when the pipeline swaps in a new file, so it never blocks the pipeline), and the labels, read
from the annotators' label files. Holdout cases and sealed traces are refused here even if a
queue row pointed at one."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from evals_pipeline.records import GOLDEN_POOLS, HUMAN_LABELS, REVIEW_ITEMS, REVIEW_QUEUES, TRACES
from evals_pipeline.review.labelstore import LabelReader

QUEUE_TITLES = {
    "disagreement": "Judge disagreements",
    "weekly": "Friday review (fresh sample)",
    "calibration_gap": "Calibration gaps",
    "holdout": "Holdout review (sealed)",
}


class NotReady(Exception):
    """The snapshot or its queues do not exist yet."""


class Refused(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class QueueStore:
    """What the pages show: queues, items, progress and one's own labels."""

    queues: tuple[str, ...] = REVIEW_QUEUES
    sealed = False

    def __init__(self, analytics: Path, labels: Path) -> None:
        self.analytics = analytics
        self.labels = LabelReader(labels)
        self._snapshot_lock = threading.Lock()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._conn_identity: tuple[int, int, int] | None = None

    def _snapshot(self) -> duckdb.DuckDBPyConnection:
        """The read-only connection to the current snapshot file (call with the lock held),
        reopened when the pipeline has swapped in a new file (a new inode). Kept open between
        requests (a fresh connection costs ~13 ms, most of a page view); it never blocks the
        pipeline, which writes a new file and renames it over this one."""
        try:
            stat = self.analytics.stat()
        except FileNotFoundError:
            raise NotReady(self.missing_message()) from None
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._conn is not None and identity == self._conn_identity:
            return self._conn
        if self._conn is not None:
            # close first: DuckDB caches open databases by path, so a new connect() while the
            # old one is open would return the old file
            self._conn.close()
            self._conn = None
        try:
            conn = duckdb.connect(str(self.analytics), read_only=True)
        except duckdb.Error as exc:
            raise NotReady(f"The snapshot {self.analytics} cannot be opened: {exc}") from exc
        tables = {r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if REVIEW_ITEMS.name not in tables:
            conn.close()
            raise NotReady(
                f"{self.analytics} has no review_items table: it predates the review queues. "
                "Run the evals_review job (or `make demo`) to build them."
            )
        self._conn, self._conn_identity = conn, identity
        return conn

    def missing_message(self) -> str:
        return (
            f"There is no analytics snapshot at {self.analytics} yet. Run `make demo`, or "
            "the evals_review job in the Dagster UI (`make ui`), to build the queues."
        )

    def admit(self, annotator: str) -> None:
        """Refuse an annotator this store's queues are not for (every one is, here)."""

    def viewed(self, annotator: str, row: dict[str, Any]) -> None:
        """Record that `annotator` is about to see `row` (only sealed content is logged)."""

    def _query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        # Queries take about a millisecond: one at a time keeps the shared connection simple.
        with self._snapshot_lock:
            cur = self._snapshot().execute(sql, params or [])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def prepared_at(self) -> datetime | None:
        rows = self._query(f"SELECT max(prepared_at) AS t FROM {REVIEW_ITEMS}")
        return rows[0]["t"] if rows else None

    def done_ids(self, annotator: str) -> set[str]:
        rows = self.labels.query(
            f"SELECT DISTINCT subject_id FROM {HUMAN_LABELS} WHERE annotator = ? AND kind = 'pointwise'",
            [annotator],
        )
        return {r[0] for r in rows}

    def my_label(self, annotator: str, item_id: str) -> dict[str, Any] | None:
        rows = self.labels.query(
            f"""SELECT verdict, critique, failure_mode, labelled_at FROM {HUMAN_LABELS}
               WHERE annotator = ? AND subject_id = ? AND kind = 'pointwise' AND current""",
            [annotator, item_id],
        )
        return (
            dict(zip(["verdict", "critique", "failure_mode", "labelled_at"], rows[0], strict=True))
            if rows
            else None
        )

    def queue_ids(self, queue: str) -> list[str]:
        return [
            r["item_id"]
            for r in self._query(
                f"SELECT item_id FROM {REVIEW_ITEMS} WHERE queue = ? ORDER BY position", [queue]
            )
        ]

    def progress(self, annotator: str) -> list[dict[str, Any]]:
        done = self.done_ids(annotator)
        counts = {
            r["queue"]: r
            for r in self._query(
                f"SELECT queue, count(*) AS total, count(DISTINCT category) AS categories FROM {REVIEW_ITEMS} GROUP BY 1"
            )
        }
        out = []
        for q in self.queues:
            ids = self.queue_ids(q) if q in counts else []
            n_done = sum(1 for i in ids if i in done)
            out.append(
                {
                    "queue": q,
                    "title": QUEUE_TITLES[q],
                    "total": len(ids),
                    "done": n_done,
                    "left": len(ids) - n_done,
                    "categories": counts.get(q, {}).get("categories", 0),
                }
            )
        return out

    def check_queue(self, queue: str) -> None:
        if queue not in self.queues:
            raise Refused(
                404,
                "Unknown queue",
                f"There is no queue {queue!r}. The queues are: {', '.join(self.queues)}.",
            )

    def not_in_queue(self, queue: str, item_id: str) -> Refused:
        prepared = self.prepared_at()
        return Refused(
            404,
            "Case not in this queue",
            f"There is no case {item_id!r} in the {queue!r} queue built at {prepared:%Y-%m-%d %H:%M} UTC. "
            "It may have left the queue when the queues were rebuilt, or the link is wrong. "
            "Open the queue again to continue with the next case."
            if prepared
            else f"There is no case {item_id!r}: the queues are empty.",
        )

    def item(self, queue: str, item_id: str) -> dict[str, Any]:
        self.check_queue(queue)
        rows = self._query(
            f"""SELECT i.*, p.pool, t.sealed FROM {REVIEW_ITEMS} i
               LEFT JOIN {GOLDEN_POOLS} p ON p.case_id = i.case_id
               LEFT JOIN {TRACES} t ON t.trace_id = i.trace_id
               WHERE i.queue = ? AND i.item_id = ?""",
            [queue, item_id],
        )
        if not rows:
            raise self.not_in_queue(queue, item_id)
        row = rows[0]
        leaked = (
            row["pool"] in (None, "holdout")
            if row["subject"] == "candidate"
            else row["sealed"] is not False
        )
        if leaked:
            raise Refused(
                403,
                "Sealed holdout",
                "This case belongs to the sealed holdout and is never shown for review. "
                "The queue that pointed here is wrong: rebuild it (the review_items_never_holdout check fails on it).",
            )
        return row

    def mode_names(self, tax: Any) -> list[str]:
        typed = [
            r[0]
            for r in self.labels.query(
                f"SELECT DISTINCT failure_mode FROM {HUMAN_LABELS} WHERE failure_mode IS NOT NULL"
            )
        ]
        return sorted({tax.resolve(m)[0] for m in typed} | set(tax.modes))

    def fails(self) -> Any:
        return self.labels.frame(
            # one label per output (the newest), so two experts on one output count once
            f"""SELECT subject_id, annotator, critique, failure_mode, labelled_at FROM {HUMAN_LABELS}
               WHERE kind = 'pointwise' AND current
               QUALIFY row_number() OVER (PARTITION BY subject_id ORDER BY labelled_at DESC NULLS LAST) = 1
                   AND verdict = 'fail'
               ORDER BY labelled_at DESC NULLS LAST"""
        )

    def reviewed(self) -> Any:
        """Per labelled output: its first label time and its newest verdict and failure mode."""
        return self.labels.frame(
            f"""SELECT subject_id, min(labelled_at) AS labelled_at, arg_max(verdict, labelled_at) AS verdict,
                      arg_max(failure_mode, labelled_at) AS failure_mode
               FROM {HUMAN_LABELS} WHERE kind = 'pointwise' AND current GROUP BY 1"""
        )
