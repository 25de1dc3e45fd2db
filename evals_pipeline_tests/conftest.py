"""Shared fixtures: a small simulated deployment in a temporary data directory."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# The embedded default without the judge-method extras (fixtures/evals.tests.yaml says why).
os.environ.setdefault(
    "EVALS_CONFIG", str(Path(__file__).resolve().parent / "fixtures" / "evals.tests.yaml")
)
warnings.filterwarnings("ignore", module="dagster")

from evals_pipeline.simulator.traffic import SimulationConfig, simulate  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

SMALL = SimulationConfig(
    seed=11,
    start="2026-03-01",
    end="2026-03-06",
    traces_per_day=300,
    topics_per_category=30,
    n_users=500,
    label_count=120,
    malformed_rate=0.01,
)


# The files whose tests take longest (a whole demo, or a module-scoped simulated deployment
# several tests share) start first: `make test` hands whole files to its workers
# (`--dist loadfile`, so a module's simulation is built once, not once per worker), and a long
# file started last would leave the other core idle at the end.
SLOW_FIRST = (
    "test_demo.py",
    "test_judge_method.py",
    "test_spark.py",
    "test_revalidation.py",
    "test_hardening.py",
    "test_holdout_panel.py",
    "test_pipeline.py",
    "test_project.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: others keep order


@pytest.fixture(scope="session", autouse=True)
def offline_models() -> None:
    """The simulator's offline models as a litellm custom provider, as the embedded project
    file's `providers.offline.handler` registers them before a run's first call."""
    from evals_pipeline.simulator.offline_models import register_provider

    register_provider()


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six simulated days written once for the whole session (read-only for tests)."""
    root = tmp_path_factory.mktemp("traffic")
    simulate(SMALL, root)
    return root


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data directory; paths.* resolve under it for this test."""
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    return tmp_path
