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

from evals_pipeline.paths import traffic_dir

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


class SimulatedTraceSource(TraceSource):
    """The embedded default: the seeded traffic simulator, generated on first use.

    Uses `SimulationConfig()` defaults with the given seed and period; the files are written
    once under `root` (default data/traffic) and reused while the configuration is unchanged.
    """

    root: str = Field(default="", description="Output folder; empty means <data dir>/traffic.")
    seed: int = Field(default=7, description="Simulator seed.")
    start: str = Field(default="2026-01-01", description="First simulated day.")
    end: str = Field(default="2026-09-30", description="Last simulated day (inclusive).")
    traces_per_day: int = Field(default=1200, description="Mean traces per day at the start.")

    def root_dir(self) -> Path:
        return Path(self.root).resolve() if self.root else traffic_dir()

    def config(self):  # -> SimulationConfig (imported lazily: numpy/pandas at call time only)
        from evals_pipeline.simulator.traffic import SimulationConfig

        return SimulationConfig(
            seed=self.seed, start=self.start, end=self.end, traces_per_day=self.traces_per_day
        )

    def files_for_day(self, stream: str, day: date) -> list[Path]:
        from evals_pipeline.simulator.traffic import ensure_simulated

        ensure_simulated(self.config(), self.root_dir())
        return super().files_for_day(stream, day)
