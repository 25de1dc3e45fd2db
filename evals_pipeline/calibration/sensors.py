"""The label-files sensor: a calibration run when label files appear or change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from evals_pipeline.calibration.labels import LABEL_SUFFIXES
from evals_pipeline.paths import data_dir
from evals_pipeline.records import HUMAN_LABELS


def labels_dir() -> Path:
    return data_dir() / "labels"


def label_files_state(folder: Path) -> dict[str, list[int]]:
    if not folder.is_dir():
        return {}
    return {
        p.name: [p.stat().st_mtime_ns, p.stat().st_size]
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in LABEL_SUFFIXES
    }


LABEL_FILES_STATE = "label_files_state"


def last_loaded_label_files(instance: DagsterInstance) -> dict[str, list[int]]:
    """The label files (name -> [mtime_ns, size]) the last human_labels materialization read."""
    event = instance.get_latest_materialization_event(AssetKey(HUMAN_LABELS.name))
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get(LABEL_FILES_STATE) if materialization else None
    return dict(value.value) if value is not None else {}  # type: ignore[arg-type]


@sensor(
    job_name="evals_calibration",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def label_files_sensor(context: SensorEvaluationContext) -> Iterator[RunRequest | SkipReason]:
    """Starts evals_calibration when a label file appears or grows in data/labels/. On its
    first tick (no cursor yet, e.g. the first `make ui` after `make demo`) it compares with
    the files the last human_labels materialization read, so an unchanged folder starts
    nothing; a run it starts names the files that changed (tag label_files)."""
    state = label_files_state(labels_dir())
    if context.cursor:
        previous = json.loads(context.cursor)
    else:
        previous = last_loaded_label_files(context.instance)
        if previous == state:
            context.update_cursor(json.dumps(state))
    if not state or state == previous:
        yield SkipReason(
            f"no new or changed label files in {labels_dir()} since the last calibration run"
        )
        return
    changed = sorted(k for k in state if previous.get(k) != state[k])
    context.update_cursor(json.dumps(state))
    yield RunRequest(
        run_key=json.dumps(state, sort_keys=True), tags={"label_files": ", ".join(changed)[:200]}
    )
