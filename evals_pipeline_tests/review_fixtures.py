"""A small analytics snapshot with review queues, written directly (no pipeline run), for the
review app's tests: ordinary cases, a script-injection trace, an oversized field, and a queue
row that wrongly points at a holdout case."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pandas as pd

from evals_pipeline.records import GOLDEN_POOLS, REVIEW_ITEMS, TRACES
from evals_pipeline.warehouse import connect, ensure_tables

PREPARED_AT = datetime(2026, 9, 25, 6, 0)
INJECTION = (
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold?</b>'
)
JUDGE_SECRET = "JUDGE-CRITIQUE-7f3a: the answer misses the refund window"
HOLDOUT_CASE = "gc_holdout_1"


def _item(queue: str, position: int, item_id: str, **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "queue": queue,
        "position": position,
        "item_id": item_id,
        "subject": "trace",
        "trace_id": item_id,
        "case_id": None,
        "app_version": "v2",
        "category": "how_to",
        "user_segment": "pro_expert",
        "ts": datetime(2026, 9, 21, 10, 0),
        "input": f"How do I export my data? ({item_id})",
        "output": f"Open Settings and choose Export. ({item_id})",
        "context": json.dumps(["Help: Settings > Export"]),
        "tool_calls": None,
        "metadata": json.dumps({"channel": "web"}),
        "reference_good": "Settings > Export > Download.",
        "reference_borderline": "Use Export in Settings.",
        "reason": "Friday review: a fresh random production sample of the week from 2026-09-18",
        "judge_verdicts": json.dumps(
            [
                {
                    "judge": "offline/reference-judge",
                    "rubric": "pass_fail 1",
                    "verdict": "fail",
                    "critique": JUDGE_SECRET,
                    "error": None,
                },
                {
                    "judge": "offline/generic-judge",
                    "rubric": "pass_fail 1",
                    "verdict": None,
                    "critique": None,
                    "error": "timeout: no answer",
                },
            ]
        ),
        "prepared_at": PREPARED_AT,
    }
    base.update(over)
    return base


def write_review_snapshot(
    path: Path,
    prepared_at: datetime = PREPARED_AT,
    drop: tuple[str, ...] = (),
    extra: tuple[dict[str, object], ...] = (),
) -> list[dict[str, object]]:
    """Write the snapshot beside `path` and swap it in, as the pipeline does (items in `drop`
    left out, like a rebuilt queue; `extra` weekly trace items added)."""
    items = [
        _item("weekly", 1, "tr_a"),
        _item("weekly", 2, "tr_inject", output=INJECTION, input="<i>not italic</i> & friends"),
        _item("weekly", 3, "tr_big", output="x" * 50_000, context="{not json"),
        _item(
            "disagreement",
            1,
            "gc_1|v3",
            subject="candidate",
            trace_id="tr_src1",
            case_id="gc_1",
            app_version="v3",
            reason="The judges disagree or failed: pass_fail 1: split_vote: 2 pass / 1 fail",
        ),
        # A queue row that must never be served: a holdout case (the app refuses it).
        _item(
            "disagreement",
            2,
            f"{HOLDOUT_CASE}|v3",
            subject="candidate",
            trace_id="tr_src2",
            case_id=HOLDOUT_CASE,
            app_version="v3",
        ),
    ]
    items += [
        _item("weekly", len(items) + n, **{"trace_id": e["item_id"], **e})
        for n, e in enumerate(extra)
    ]
    items = [i for i in items if i["item_id"] not in drop]
    for item in items:
        item["prepared_at"] = prepared_at
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        ensure_tables(conn, [REVIEW_ITEMS, GOLDEN_POOLS, TRACES])
        conn.execute(f"DELETE FROM {REVIEW_ITEMS}")
        frame = pd.DataFrame(items, columns=REVIEW_ITEMS.column_names)
        conn.register("_items", frame)
        conn.execute(
            f"INSERT INTO {REVIEW_ITEMS} SELECT queue, position, item_id, subject, trace_id, case_id, app_version, "
            "category, user_segment, ts, input, output, "
            "CASE WHEN json_valid(context) THEN context::JSON END, tool_calls::JSON, metadata::JSON, "
            "reference_good, reference_borderline, reason, judge_verdicts::JSON, prepared_at FROM _items"
        )
        conn.unregister("_items")
        conn.execute(f"DELETE FROM {GOLDEN_POOLS}")
        conn.execute(
            f"INSERT INTO {GOLDEN_POOLS} (case_id, trace_id, category, pool) VALUES "
            "('gc_1', 'tr_src1', 'how_to', 'active'), (?, 'tr_src2', 'how_to', 'holdout')",
            [HOLDOUT_CASE],
        )
        conn.execute(f"DELETE FROM {TRACES}")
        conn.execute(
            f"INSERT INTO {TRACES} (trace_id, category, sealed) VALUES "
            "('tr_a', 'how_to', false), ('tr_inject', 'how_to', false), ('tr_big', 'how_to', false), "
            # gc_1 graduated from the holdout: its source trace stays sealed, the case is active
            "('tr_src1', 'how_to', true), ('tr_src2', 'how_to', true)"
        )
        for e in extra:
            conn.execute(
                f"INSERT INTO {TRACES} (trace_id, category, sealed) VALUES (?, 'how_to', false)",
                [e["item_id"]],
            )
    finally:
        conn.close()
    os.replace(tmp, path)
    return items


HOLDOUT_SECRET = "HOLDOUT-INPUT-91c2: what is the refund window for annual plans?"


def write_sealed_queue(area: Path, principal: str) -> list[dict[str, object]]:
    """A sealed review area's queue file as a rotation writes it (the store's rows with the
    app version blinded): two answers to one holdout case."""
    from evals_pipeline.records import HOLDOUT_REVIEW_ITEMS
    from evals_pipeline.review.sealed import BLIND_VERSION, QUEUE_TABLE, queue_file

    items = [
        {
            **_item("holdout", n, f"h-{n:016x}", subject="holdout", case_id="gc_holdout_9"),
            "input": HOLDOUT_SECRET,
            "app_version": BLIND_VERSION,
            "reason": "Layer 3: a sample of the sealed holdout.",
            "quarter": datetime(2026, 7, 1).date(),
            "principal": principal,
        }
        for n in (1, 2)
    ]
    area.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(items, columns=HOLDOUT_REVIEW_ITEMS.column_names)
    conn = connect(queue_file(area))
    try:
        conn.register("_items", frame)
        conn.execute(
            f"CREATE TABLE {QUEUE_TABLE} AS SELECT * REPLACE (context::JSON AS context, "
            "tool_calls::JSON AS tool_calls, metadata::JSON AS metadata, "
            "judge_verdicts::JSON AS judge_verdicts) FROM _items"
        )
    finally:
        conn.close()
    return items
