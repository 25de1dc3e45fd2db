"""Where production traces come from: an abstract resource with a file-based implementation
and the embedded simulator behind the same interface (swap it in config, not code).

File layout a source delivers (the simulator writes the same):

    <root>/traces/dt=YYYY-MM-DD/*.jsonl | *.ndjson | *.json | *.parquet  (JSONL also .gz / .zst)
    <root>/feedback/dt=YYYY-MM-DD/*.jsonl | *.parquet

One folder per UTC day; feedback is filed by the day the event arrived.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

STREAM_FOLDERS = {"traces": "traces", "feedback": "feedback"}


class TraceSource(ConfigurableResource, ABC):
    """Delivers the files of one stream for one UTC day."""

    @abstractmethod
    def root_dir(self) -> Path:
        """The folder the files live under (used to show short file names)."""

    def files_for_day(self, stream: str, day: date) -> list[Path]:
        folder = self.root_dir() / STREAM_FOLDERS[stream] / f"dt={day.isoformat()}"
        if not folder.is_dir():
            return []
        # Everything in the folder: what cannot be read is quarantined with a reason and
        # hidden/marker files are counted, never silently skipped.
        return sorted(folder.iterdir())


class FileTraceSource(TraceSource):
    """Files exported by your product (e.g. a nightly dump of your tracing store)."""

    root: str = Field(
        description="Folder holding traces/dt=YYYY-MM-DD/ and feedback/dt=YYYY-MM-DD/."
    )

    def root_dir(self) -> Path:
        return Path(self.root).expanduser().resolve()
