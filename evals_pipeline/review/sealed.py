"""The sealed review area and the review app's sealed session (Layer 3 of seed 003).

At a rotation the pipeline queues a sample of the holdout answers for the principal expert
and writes that queue, alone, to `queue.duckdb` in the sealed area beside the holdout store
(`data/holdout_review/`). `make review-holdout` serves it in a session of its own: it reads
nothing else (not the analysts' snapshot, not the ordinary label files), admits only the
principal expert, writes their labels to `labels/` in the sealed area, and appends one line
per page view to `views/` before the page is sent. The pipeline (`holdout_review` asset)
moves each view into `pool_events` as a holdout read and the labels into the holdout store;
only counts and agreement with the judges reach an analyst table.

The ordinary session never sees any of it: its queues refuse holdout cases, and its label
folder (`data/labels/`) is not this one.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evals_pipeline.calibration.evidence import files_state
from evals_pipeline.records import HOLDOUT_REVIEW_ITEMS, sql_literal
from evals_pipeline.review.app_store import QueueStore, Refused
from evals_pipeline.review.labelstore import append_jsonl, check_annotator

QUEUE = "holdout"
QUEUE_FILE = "queue.duckdb"
# The sealed queue file holds one table named like the ordinary queues, so the pages and
# QueueStore's queries serve it unchanged.
QUEUE_TABLE = "review_items"
BLIND_VERSION = "hidden (blind review)"


def queue_file(area: Path) -> Path:
    return area / QUEUE_FILE


def labels_dir(area: Path) -> Path:
    return area / "labels"


def views_dir(area: Path) -> Path:
    return area / "views"


def area_state(area: Path) -> dict[str, list[int]]:
    """name -> [mtime_ns, size] of the sealed label files and view logs (what a collection
    read; the sensor compares)."""
    return {
        f"{sub.name}/{name}": stat
        for sub in (labels_dir(area), views_dir(area))
        for name, stat in files_state(sub).items()
    }


def append_view(area: Path, annotator: str, row: dict[str, Any]) -> None:
    """One line per view of a holdout answer, fsynced before the page is sent: a view the
    log does not hold never happened."""
    folder = views_dir(area)
    folder.mkdir(parents=True, exist_ok=True)
    append_jsonl(
        folder / f"views-{check_annotator(annotator)}.jsonl",
        {
            "view_id": uuid.uuid4().hex,
            "annotator": check_annotator(annotator),
            "item_id": row["item_id"],
            "case_id": row["case_id"],
            "quarter": str(row["quarter"]),
            "viewed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        },
    )


def read_views(area: Path) -> list[dict[str, Any]]:
    """Every line of the view log. A line that does not parse (a crash mid-write) is still a
    view: it comes back with `view_id` = file#line and no case, so it is logged all the same."""
    out: list[dict[str, Any]] = []
    folder = views_dir(area)
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            if not line.strip():
                continue
            try:
                view = json.loads(line)
                if not isinstance(view, dict) or "view_id" not in view:
                    raise ValueError("not a view record")
            except ValueError:
                view = {"view_id": f"{path.name}#{n + 1}", "unreadable": True}
            out.append(view)
    return out


class SealedQueueStore(QueueStore):
    """The sealed session's store: the holdout queue from the sealed area's queue file, the
    sealed label files, and a view log. Admits the principal expert only."""

    queues = (QUEUE,)
    sealed = True

    def __init__(self, area: Path) -> None:
        super().__init__(queue_file(area), labels_dir(area))
        self.area = area

    def missing_message(self) -> str:
        return (
            f"There is no holdout review queue at {self.analytics} yet. It is written at a "
            "rotation by the holdout panel evaluation once judges are trusted (the "
            "evals_holdout_panel job, or `make demo`)."
        )

    def principal(self) -> str:
        rows = self._query(f"SELECT any_value(principal) AS p FROM {QUEUE_TABLE}")
        return rows[0]["p"] or "" if rows else ""

    def admit(self, annotator: str) -> None:
        principal = self.principal()
        if principal and check_annotator(principal) != annotator:
            raise Refused(
                403,
                "Sealed session",
                f"The holdout review is for the principal expert ({principal}) only: every "
                "view of a holdout case is a read of the sealed holdout. Give that name, or "
                "use the ordinary review app (`make review`).",
            )

    def viewed(self, annotator: str, row: dict[str, Any]) -> None:
        append_view(self.area, annotator, row)

    def item(self, queue: str, item_id: str) -> dict[str, Any]:
        self.check_queue(queue)
        rows = self._query(
            f"SELECT * FROM {QUEUE_TABLE} WHERE queue = ? AND item_id = ?", [queue, item_id]
        )
        if not rows:
            raise self.not_in_queue(queue, item_id)
        return rows[0]


# the columns of the sealed queue file: the store's rows with the app version blinded
EXPORT_COLUMNS = [
    f"{sql_literal(BLIND_VERSION)} AS app_version" if c == "app_version" else c
    for c in HOLDOUT_REVIEW_ITEMS.column_names
]
