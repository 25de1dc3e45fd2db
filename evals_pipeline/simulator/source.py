"""The embedded default's trace source: the seeded traffic simulator behind the same
`TraceSource` interface as a team's exported files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field

from evals_pipeline.ingest.sources import TraceSource
from evals_pipeline.paths import traffic_dir


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
    canary_version: str = Field(
        default="", description="App version of a canary in the traffic ('' = no canary)."
    )
    canary_control: str = Field(default="", description="The canary's control version.")
    canary_start: str = Field(default="", description="First day of the canary.")
    canary_days: int = Field(default=7, description="Days of the canary.")
    canary_share: float = Field(default=0.05, description="Share of users in the canary.")
    canary_effect: dict[str, float] = Field(
        default_factory=dict,
        description="Planted effect: segment -> points every signal moves the wrong way.",
    )

    def flat_dir(self) -> Path:
        return Path(self.root).resolve() if self.root else traffic_dir()

    def root_dir(self) -> Path:
        # With span_format 'otel' the simulator's traffic is also written as OTLP JSON spans.
        return self.flat_dir() / "otel" if self.span_format == "otel" else self.flat_dir()

    def config(self):  # -> SimulationConfig (imported lazily: numpy/pandas at call time only)
        from evals_pipeline.simulator.traffic import CanaryPlan, SimulationConfig

        canary = (
            CanaryPlan(
                self.canary_version,
                self.canary_control,
                self.canary_start,
                self.canary_days,
                self.canary_share,
                dict(self.canary_effect),
            )
            if self.canary_version
            else None
        )
        return SimulationConfig(
            seed=self.seed,
            start=self.start,
            end=self.end,
            traces_per_day=self.traces_per_day,
            canary=canary,
        )

    def files_for_day(self, stream: str, day: date) -> list[Path]:
        from evals_pipeline.simulator.traffic import ensure_simulated

        ensure_simulated(self.config(), self.flat_dir())
        if self.span_format == "otel":
            from evals_pipeline.simulator.otel import ensure_otel_export

            ensure_otel_export(self.flat_dir(), self.root_dir())
        return super().files_for_day(stream, day)
