"""Where production traces come from: an abstract resource with a file-based implementation
and the embedded simulator behind the same interface (swap it in config, not code).

File layout a source delivers (the simulator writes the same):

    <root>/traces/dt=YYYY-MM-DD/*.jsonl | *.ndjson | *.json | *.parquet  (JSONL also .gz / .zst)
    <root>/feedback/dt=YYYY-MM-DD/*.jsonl | *.parquet

One folder per UTC day; feedback is filed by the day the event arrived. A span export
(`span_format`) may also be one flat folder of files (`<root>/traces/*` or `<root>/*`), its
traces partitioned by the day they started.
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

    span_format: str = Field(
        default="",
        description="Empty: our flat records. otel / openinference / langfuse: a span export "
        "(read by ingest/spans.py), in day folders or one flat folder.",
    )

    def files_for_day(self, stream: str, day: date) -> list[Path]:
        if not self.span_format:
            folder = self.root_dir() / STREAM_FOLDERS[stream] / f"dt={day.isoformat()}"
            if not folder.is_dir():
                return []
            # Everything in the folder: what cannot be read is quarantined with a reason and
            # hidden/marker files are counted, never silently skipped.
            return sorted(folder.iterdir())
        files = set(self._export_files(stream, day))
        if stream == "feedback":
            # Span events and Langfuse scores travel inside the trace export.
            files |= set(self._export_files("traces", day))
        return sorted(files)

    def trace_files_for_day(self, day: date) -> list[Path]:
        """The trace export files a day's feedback ingest also reads (for their events)."""
        return self._export_files("traces", day) if self.span_format else []

    def _export_files(self, stream: str, day: date) -> list[Path]:
        """A span export's files of one stream for a day: its `dt=` folder when the export is
        laid out by day, else every file of the flat folder (`<root>/<stream>/`, or for
        traces `<root>/` itself); the reader partitions their traces by start time."""
        root = self.root_dir()
        base = root / STREAM_FOLDERS[stream]
        if base.is_dir():
            children = sorted(base.iterdir())
            if any(c.name.startswith("dt=") for c in children):
                folder = base / f"dt={day.isoformat()}"
                return sorted(folder.iterdir()) if folder.is_dir() else []
            return children
        if stream == "traces" and root.is_dir():
            return [c for c in sorted(root.iterdir()) if c.name not in STREAM_FOLDERS.values()]
        return []


class FileTraceSource(TraceSource):
    """Files exported by your product (e.g. a nightly dump of your tracing store)."""

    root: str = Field(
        description="Folder holding traces/dt=YYYY-MM-DD/ and feedback/dt=YYYY-MM-DD/."
    )

    def root_dir(self) -> Path:
        return Path(self.root).expanduser().resolve()
