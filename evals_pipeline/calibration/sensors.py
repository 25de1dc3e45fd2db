"""Drop-folder sensors: a run when evidence files appear or change (labels and external
verdicts start a calibration run; online metrics a reports run, in reports/definitions.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from evals_pipeline.calibration.evidence import evidence_dir, files_state
from evals_pipeline.metadata import FILES_STATE
from evals_pipeline.records import EXTERNAL_VERDICTS, HUMAN_LABELS, Table


def labels_dir() -> Path:
    return evidence_dir("labels")


def last_loaded_files(instance: DagsterInstance, table: Table) -> dict[str, list[int]]:
    """The files (name -> [mtime_ns, size]) the table's last materialization read."""
    event = instance.get_latest_materialization_event(AssetKey(table.name))
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get(FILES_STATE) if materialization else None
    return dict(value.value) if value is not None else {}  # type: ignore[arg-type]


def drop_folder_sensor(
    name: str,
    folder: Callable[[], Path],
    table: Table,
    job_name: str,
    what: str,
    state_of: Callable[[Path], dict[str, list[int]]] = files_state,
) -> SensorDefinition:
    """A sensor starting `job_name` when a file appears or changes in `folder()` (as
    `state_of` lists its files). On its first tick (no cursor yet, e.g. the first `make ui`
    after `make demo`) it compares with the files the last materialization of `table` read,
    so an unchanged folder starts nothing; a run it starts names the files that changed (tag
    `files`)."""

    @sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Starts {job_name} when {what} files appear or change in the "
        f"{folder().name}/ drop folder of the data directory.",
    )
    def _sensor(context: SensorEvaluationContext) -> Iterator[RunRequest | SkipReason]:
        state = state_of(folder())
        if context.cursor:
            previous = json.loads(context.cursor)
        else:
            previous = last_loaded_files(context.instance, table)
            if previous == state:
                context.update_cursor(json.dumps(state))
        if not state or state == previous:
            yield SkipReason(f"no new or changed {what} files in {folder()} since the last run")
            return
        changed = sorted(k for k in state if previous.get(k) != state[k])
        context.update_cursor(json.dumps(state))
        yield RunRequest(
            run_key=json.dumps(state, sort_keys=True),
            tags={"files": ", ".join(changed)[:200], "drop_folder": folder().name},
        )

    return _sensor


label_files_sensor = drop_folder_sensor(
    "label_files_sensor", labels_dir, HUMAN_LABELS, "evals_calibration", "label"
)
verdict_files_sensor = drop_folder_sensor(
    "verdict_files_sensor",
    lambda: evidence_dir("verdicts"),
    EXTERNAL_VERDICTS,
    "evals_calibration",
    "external verdict",
)
