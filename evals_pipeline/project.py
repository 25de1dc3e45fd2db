"""The project file, `evals.yaml`: what a deployment chooses, in one place.

Sources, taxonomy, app versions, the judge panel, providers and their limits, the budget and
the schedules are read from this file (path: `EVALS_CONFIG`, else `evals.yaml` beside the
code), validated with pydantic when the code location loads, and handed to every asset,
sensor and schedule through the `project` resource. Op config is for one-off overrides.
Secrets are never written here: a provider names the environment variable holding its key.

An invalid file gives one line per problem, each naming where and how to fix it:

    evals.yaml: judges.panel[1]: provider 'antropic' is not under providers (known: openai, offline)
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from dagster import ConfigurableResource
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evals_pipeline.paths import REPO_ROOT
from evals_pipeline.records import DEFAULT_CATEGORIES, FEEDBACK_SIGNALS, GOOD_SIGNALS, UNCATEGORIZED

CONFIG_ENV = "EVALS_CONFIG"
DEFAULT_PROJECT_FILE = REPO_ROOT / "evals.yaml"
# Where rubric files live (a path, not an import: judging depends on this module).
RUBRIC_DIR = Path(__file__).parent / "judging" / "rubrics"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    kind: Literal["simulator", "files", "otel", "openinference", "langfuse"] = Field(
        description="simulator: the embedded simulated product; files: your traces in our flat "
        "records; otel: OTLP JSON of OpenTelemetry GenAI spans (the Collector's file exporter); "
        "openinference: OpenInference spans (OTLP JSON, or Phoenix's span table); langfuse: "
        "Langfuse's trace/observation/score export. See docs/sources.md."
    )
    path: str = Field(
        default="",
        description="Folder with traces/dt=YYYY-MM-DD/ and feedback/dt=YYYY-MM-DD/ (relative to this "
        "file); empty with the simulator means <data dir>/traffic.",
    )
    references: str = Field(
        default="",
        description="Folder of reviewed reference files (*.jsonl) for golden cases; empty means "
        "<data dir>/golden/reviewed (the simulator brings its own).",
    )
    app_version_from: list[str] = Field(
        default_factory=list,
        description="Span exports: attribute paths giving the app version, first found wins; "
        "empty = the format's default (service.version; Langfuse release, version); "
        "none found = the LLM span's model.",
    )
    trace_id_from: list[str] = Field(
        default_factory=list,
        description="Span exports: attribute paths holding your own id of an interaction (the "
        "one your labels and references use); none found = the trace id of the spans.",
    )
    feedback_names: dict[str, str] = Field(
        default_factory=dict,
        description="Span exports: feedback, annotation or score names mapped to our signals "
        "(e.g. {csat_bad: thumbs_down}); the built-in table is in docs/sources.md.",
    )
    duplicate_window_days: int | None = Field(
        default=7,
        ge=0,
        description="A trace id already stored in a partition up to this many days before or "
        "after the ingested day is quarantined as a duplicate; null checks all of history "
        "(the check then grows with it).",
    )


class SimulatorSpec(_Strict):
    seed: int = 7
    start: str = "2026-01-01"
    end: str = "2026-09-30"
    traces_per_day: int = 1200
    writes: Literal["flat", "otel"] = Field(
        default="flat",
        description="flat: our JSONL records; otel: the same traffic as OpenTelemetry GenAI "
        "spans in OTLP JSON (read like a source of kind otel).",
    )
    canary_effect: dict[str, float] = Field(
        default_factory=dict,
        description="Planted online effect of the candidate on its canary users: segment (a "
        "category or user segment) -> points every gated signal moves the wrong way.",
    )


class CategorizerSpec(_Strict):
    kind: Literal["classifier", "llm"] = Field(
        description="classifier: scikit-learn, trained on the traces an attribute categorized; "
        "llm: a model through litellm, given the categories and their descriptions."
    )
    model: str = Field(default="", description="llm: litellm model string (a provider's).")
    descriptions: dict[str, str] = Field(
        default_factory=dict,
        description="llm: category → one line saying what belongs in it (the prompt lists them).",
    )
    min_confidence: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="classifier: below this probability a trace stays uncategorized.",
    )
    min_training: int = Field(
        default=50,
        ge=2,
        description="classifier: with fewer labelled traces than this, no classifier (traces "
        "stay uncategorized).",
    )
    measure_share: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Share of the labelled traces held out (by a hash of the id) to measure the "
        "categorizer on; the classifier never trains on them.",
    )


class TaxonomySpec(_Strict):
    categories: list[str] = Field(default=list(DEFAULT_CATEGORIES), min_length=1)
    segments: list[str] = Field(
        default_factory=list, description="User segments; empty accepts any segment."
    )
    category_from: list[str] = Field(
        default_factory=list,
        description="Span exports: attribute paths holding the category (e.g. metadata.intent), "
        "first found wins. A trace without one, or with a value outside `categories`, is "
        "`uncategorized` (unless strict).",
    )
    segment_from: dict[str, str] = Field(
        default_factory=dict,
        description="Span exports: segment parts from attribute paths, joined with '_' in this "
        "order (e.g. {plan: user.plan, tenure: user.tenure} gives pro_expert); none = unknown.",
    )
    strict: bool = Field(
        default=False,
        description="Quarantine a derived category outside `categories` (unknown_category) or "
        "missing (missing_field) instead of storing it as uncategorized.",
    )
    categorizer: CategorizerSpec | None = Field(
        default=None,
        description="Assigns a category to uncategorized traces at ingest, and is measured "
        "against labelled ones (categorizer_accuracy); null = none.",
    )

    @field_validator("category_from", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class AppVersionSpec(_Strict):
    name: str = Field(min_length=1, description="As in traces.app_version.")
    model: str = Field(description="litellm model string, e.g. openai/gpt-4o-mini.")
    system_prompt: str = Field(
        default="",
        description="The version's system prompt, or a path to a text file (relative to this file).",
    )
    role: Literal["baseline", "candidate", "retired"] = "retired"
    generate: bool = Field(
        default=True, description="Generate candidate outputs with this version's model."
    )


class JudgesSpec(_Strict):
    panel: list[str] = Field(min_length=1, description="litellm model strings of the ensemble.")
    rubric: str = "pass_fail"
    dimensional_rubric: str = Field(
        default="factual_qa", description="Dimensional rubric for some categories; empty to skip."
    )
    dimensional_categories: list[str] = Field(default_factory=lambda: ["factual_lookup"])
    graded_rubric: str = Field(
        default="",
        description="A graded rubric against both references on every case (e.g. reference_grade, "
        "seed 003): the segment report shows the share as good as the borderline and as good as "
        "the high-quality reference. Empty to skip.",
    )
    pairwise: list[str] | None = Field(
        default=None, description="Judges of pairwise comparisons; default: the panel."
    )
    quorum: int = Field(
        default=0, ge=0, description="Valid answers a verdict needs; 0 = a majority of the panel."
    )
    trust_threshold: float = Field(default=0.8, gt=0, le=1)
    min_test_labels: int = Field(
        default=100,
        ge=1,
        description="Re-validation (seed 002): trust rests on the test items of the latest "
        "labelled quarters, as many quarters back as it takes to hold this many; older test "
        "items are retired. A new quarter's labels reaching it re-validate every judge.",
    )
    classifier: bool = Field(
        default=True, description="Also fit and calibrate the scikit-learn classifier judge."
    )
    principal_annotator: str = ""
    few_shot: int = Field(
        default=0,
        ge=0,
        le=40,
        description="Few-shot examples pinned per rubric version from the calibration train "
        "split (balanced pass/fail across categories, fails with the expert's critique); the "
        "judges' dev agreement is measured without and with them (few_shot_effect). 0 = none.",
    )
    use_few_shot: bool = Field(
        default=False,
        description="Judges put the pinned examples in their prompts (a rubric version of its "
        "own, <version>+fs<k>.<digest>, calibrated and trusted on its own). Decide from "
        "few_shot_effect; outputs already judged are re-judged at the next judging run.",
    )
    length_probe: int = Field(
        default=200,
        ge=0,
        description="Train/dev outputs each judge judges again with a content-free sentence "
        "appended (judge_bias.padded_*): an experiment on length bias. 0 = off.",
    )
    failure_modes: dict[str, str] = Field(
        default_factory=dict,
        description="A binary judge per failure mode (seed 001): mode name (canonical, as in the "
        "taxonomy) -> its definition, which the judge's rubric states. A mode's judge is "
        "calibrated and used once the mode has failure_mode_min_labels gold fails.",
    )
    failure_mode_min_labels: int = Field(
        default=100,
        ge=1,
        description="Gold fails of a mode before its judge is calibrated and used.",
    )
    suggester: str = Field(
        default="",
        description="Model proposing failure-mode groupings in the review app; empty = the "
        "first panel judge (EVALS_TAXONOMY_MODEL overrides).",
    )

    @property
    def pairwise_judges(self) -> list[str]:
        return list(self.pairwise) if self.pairwise is not None else list(self.panel)


class GoldSpec(_Strict):
    pointwise: Literal["principal", "majority"] = Field(
        default="principal",
        description="Gold pass/fail label: the principal annotator's (judges.principal_annotator, "
        "else the annotator with most labels), or the strict majority of the annotators.",
    )
    pairwise: Literal["principal", "majority"] = Field(
        default="majority",
        description="Gold A/B/tie preference: the strict majority of the annotators (no strict "
        "majority = no gold label, counted), or the principal annotator's.",
    )


class EvidenceSpec(_Strict):
    gold: GoldSpec = Field(
        default_factory=GoldSpec,
        description="How the annotators' labels of an item become its gold label.",
    )
    segment_by: str = Field(
        default="segment",
        min_length=1,
        description="The attribute (an extra column of label, verdict files) naming an item's "
        "segment: agreement, pairwise calibration and ratings are reported per value of it.",
    )
    min_segment_items: int = Field(
        default=20,
        ge=1,
        description="A segment is reported on its own with at least this many items.",
    )
    lower_is_better: list[str] = Field(
        default=[],
        description="Imported metrics where lower is better (escalation_rate, latency_ms): the "
        "correlation alarm expects them to fall as offline scores rise.",
    )


class ProviderSpec(_Strict):
    api_base: str | None = Field(default=None, description="Endpoint (proxies, local servers).")
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the key."
    )
    max_concurrency: int = Field(default=16, ge=1)
    rpm: int = Field(default=0, ge=0, description="Requests per minute; 0 = unlimited.")
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    handler: str | None = Field(
        default=None,
        description="Module registering a litellm custom provider for this prefix "
        "(its register_provider()); the embedded default's offline models use one.",
    )


class WarehouseSpec(_Strict):
    memory_limit: str = Field(
        default="1GB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory limit for pipeline runs: beyond it DuckDB spills to disk, "
        "so a large day ingests in flat memory (e.g. 1GB, 4GB).",
    )
    threads: int = Field(default=0, ge=0, description="DuckDB threads; 0 = one per core.")

    def connection_config(self) -> dict[str, object]:
        return {
            "memory_limit": self.memory_limit,
            **({"threads": self.threads} if self.threads else {}),
        }


class SparkSpec(_Strict):
    master: str = Field(
        default="local[*]",
        description="Spark master URL: local[*] (every core of this machine), local[2], "
        "spark://host:7077, yarn, k8s://...; read only when engine is spark.",
    )
    lake: str = Field(
        default="",
        description="Where the traffic-sized tables are written as Parquet, partitioned by day "
        "(a folder relative to this file, or s3a://bucket/prefix on a cluster); empty means "
        "<data dir>/lake. The DuckDB warehouse reads them as views.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Spark settings passed to the session as they are (e.g. "
        "spark.executor.memory: 8g, spark.sql.shuffle.partitions: '400').",
    )


class CallsSpec(_Strict):
    processes: int = Field(
        default=1,
        ge=1,
        description="Processes that make a batch's model calls, each on its own event loop with "
        "its share of every provider's concurrency and rpm. litellm spends ~3.5 ms of CPU per "
        "call, so one process serves at most ~250 calls/s; above ~64 calls in flight, give it "
        "the machine's cores. Batches under 100 calls per process stay in one process.",
    )


class BudgetSpec(_Strict):
    max_usd_per_run: float | None = Field(
        default=None, gt=0, description="A run whose estimated cost exceeds this stops first."
    )


class DriftSpec(_Strict):
    max_days_without_new_cases: int = Field(
        default=60,
        ge=1,
        description="The golden set is stale when no case entered it for this many days of "
        "traffic (seed 003): a warning on trace_sample.",
    )
    category_window_days: int = Field(
        default=28, ge=1, description="Recent window of the category-mix check (days of traffic)."
    )
    category_baseline_days: int = Field(
        default=90,
        ge=1,
        description="Baseline the recent window is compared with (the days just before it).",
    )
    max_share_change: float = Field(
        default=0.5,
        gt=0,
        description="A category's traffic share may move by this fraction of its baseline share "
        "(0.5: from 10% to under 5% or over 15%) before the sampling floors' assumptions are "
        "flagged.",
    )
    offline_rise_months: int = Field(
        default=3,
        ge=2,
        description="Months over which offline scores rising while users stay flat is an alarm "
        "(seed 003): the trusted judges overfit, or the eval set stopped reflecting users.",
    )
    min_offline_rise: float = Field(
        default=0.05,
        gt=0,
        description="The trusted judges' monthly pass rate on production traces must rise by at "
        "least this, month after month, for the alarm.",
    )
    max_online_change: float = Field(
        default=0.01,
        gt=0,
        description="...while the thumbs-up rate of all traffic moves by no more than this.",
    )


class HoldoutReviewSpec(_Strict):
    cases: int = Field(
        default=40,
        ge=0,
        description="Holdout cases queued at each rotation for the principal expert's sealed "
        "review (Layer 3 of seed 003), an equal share per category; each case's candidate "
        "and baseline answers are queued. 0 = no expert review of the holdout.",
    )


# The signals a gate can use: per trace, whether the event happened (edit_distance is a size,
# not an event). Direction: records.GOOD_SIGNALS rise with good news, the rest with bad.
GATED_SIGNALS = tuple(s for s in FEEDBACK_SIGNALS if s != "edit_distance")


class ShadowSpec(_Strict):
    start: date = Field(
        description="First moment (UTC day) of the shadow period: the candidate answers live "
        "traffic beside the control, users see the control's answers."
    )
    hours: int = Field(default=48, ge=1, description="Length of the shadow period (seed 003: 48).")
    per_category: int = Field(
        default=150,
        ge=10,
        description="Live inputs of the period judged per category (the control's own traces, "
        "chosen by a stable hash); each costs one candidate call and two answers' judge calls.",
    )
    max_drop: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="The candidate's trusted-judge pass rate may not be lower than the "
        "control's on the same inputs by more than this, significantly (seed 003: 5%).",
    )


class CanarySpec(_Strict):
    start: date = Field(description="First UTC day a share of users is served by the candidate.")
    days: int = Field(default=7, ge=1, description="Monitoring window (seed 003: 7 days).")
    share: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Share of users served by the candidate (seed 003: 5%); the traffic says "
        "who was served by which version (traces.app_version).",
    )
    max_drop: float = Field(
        default=0.02,
        gt=0,
        lt=1,
        description="A signal's rate may not be worse for canary users than for control users "
        "by more than this, significantly, on any segment (seed 003: 2 points).",
    )
    signals: list[str] = Field(
        default_factory=lambda: [
            "session_continued",
            "task_completed",
            "thumbs_down",
            "regenerate",
            "escalation",
        ],
        min_length=1,
        description=f"Online signals gated, each as the share of traces with the event; a rise "
        f"is good for {', '.join(GOOD_SIGNALS)}, bad for the others.",
    )
    segments: list[Literal["category", "user_segment"]] = Field(
        default_factory=lambda: ["category", "user_segment"],
        description="Segment levels compared besides all users (each level's values apart).",
    )

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, signals: list[str]) -> list[str]:
        unknown = sorted(set(signals) - set(GATED_SIGNALS))
        if unknown:
            raise ValueError(f"unknown signals {unknown}; gated signals are {list(GATED_SIGNALS)}")
        return signals


class OnlineGatesSpec(_Strict):
    shadow: ShadowSpec | None = Field(
        default=None, description="The shadow period of the candidate (none: no shadow gate)."
    )
    canary: CanarySpec | None = Field(
        default=None, description="The candidate's canary (none: no canary gate)."
    )
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Family-wise error rate of each gate (Holm over its segments and signals).",
    )


class SyntheticSpec(_Strict):
    dimensions: str = Field(
        description="The dimension file (YAML, relative to this file): the product, the "
        "dimensions and their values, and which dimension is the task category "
        "(docs/synthetic.md)."
    )
    generator: str = Field(
        description="litellm model string that turns a tuple into a natural user input."
    )
    filter_judges: list[str] = Field(
        min_length=1,
        description="litellm model strings of the realism filter; only those calibration "
        "trusts (expert labels on synthetic inputs) vote, and without one nothing is admitted.",
    )
    filter_rubric: str = Field(
        default="realism", description="The filter's rubric (judging/rubrics/<name>.yaml)."
    )
    tuples: int = Field(default=60, ge=1, description="Tuples drawn from the dimensions.")
    floor: int = Field(
        default=3,
        ge=1,
        description="Every value of every dimension appears in at least this many tuples, and "
        "(a check) in at least this many admitted inputs.",
    )
    variants: int = Field(
        default=2,
        ge=1,
        le=5,
        description="Inputs generated per tuple; the first admitted one is kept, so a rejected "
        "or duplicate generation does not cost the tuple its coverage.",
    )
    near_duplicate: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="TF-IDF cosine similarity (word 1-2 grams) at or above which an input is a "
        "near-duplicate of an earlier one or of an active case's input.",
    )
    seed: int = Field(default=7, description="Seed of the tuple draw.")


class SchedulesSpec(_Strict):
    daily: bool = False
    quarterly: bool = False
    weekly_review: bool = False
    reports: bool = False
    online_gates: bool = Field(
        default=False,
        description="Evaluate the shadow and canary gates every day of their windows.",
    )


class ProjectConfig(_Strict):
    source: SourceSpec
    simulator: SimulatorSpec = SimulatorSpec()
    taxonomy: TaxonomySpec = TaxonomySpec()
    app_versions: list[AppVersionSpec] = Field(min_length=1)
    judges: JudgesSpec
    evidence: EvidenceSpec = Field(default_factory=EvidenceSpec)
    providers: dict[str, ProviderSpec] = Field(min_length=1)
    budget: BudgetSpec = BudgetSpec()
    calls: CallsSpec = CallsSpec()
    warehouse: WarehouseSpec = WarehouseSpec()
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="What runs the traffic-sized stages (ingest, sampling): duckdb in the "
        "warehouse file, or spark writing a Parquet lake the warehouse reads as views. "
        "Chosen once per deployment (docs/spark.md).",
    )
    spark: SparkSpec = SparkSpec()
    schedules: SchedulesSpec = SchedulesSpec()
    drift: DriftSpec = DriftSpec()
    holdout_review: HoldoutReviewSpec = HoldoutReviewSpec()
    online_gates: OnlineGatesSpec = OnlineGatesSpec()
    synthetic: SyntheticSpec | None = Field(
        default=None,
        description="Synthetic inputs from dimension tuples (none: not generated).",
    )
    # Where the file was read from: relative paths in it resolve against its folder.
    base_dir: str = Field(default="", exclude=True)

    @field_validator("app_versions")
    @classmethod
    def _one_of_each_role(cls, versions: list[AppVersionSpec]) -> list[AppVersionSpec]:
        names = [v.name for v in versions]
        if len(set(names)) != len(names):
            raise ValueError(f"app version names repeat: {names}")
        for role in ("baseline", "candidate"):
            if sum(v.role == role for v in versions) > 1:
                raise ValueError(f"more than one app version has role {role}")
        return versions

    # ---- derived ------------------------------------------------------------------------

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.base_dir or ".") / p

    def system_prompt(self, version: AppVersionSpec) -> str:
        text = version.system_prompt
        if _is_prompt_file(text):
            return self.path(text).read_text(encoding="utf-8-sig").strip()
        return text

    def version(self, role: str) -> str:
        """The app version with this role ('' when none has it)."""
        return next((v.name for v in self.app_versions if v.role == role), "")

    @property
    def suggester(self) -> str:
        return self.judges.suggester or self.judges.panel[0]

    @property
    def span_format(self) -> str | None:
        """The span export the traces arrive as (otel, openinference, langfuse), or None for
        our flat records."""
        if self.source.kind == "simulator":
            return "otel" if self.simulator.writes == "otel" else None
        return None if self.source.kind == "files" else self.source.kind

    def models(self) -> list[str]:
        """Every model string the project calls."""
        seen = [v.model for v in self.app_versions if v.generate]
        seen += self.judges.panel + self.judges.pairwise_judges + [self.suggester]
        categorizer = self.taxonomy.categorizer
        if categorizer is not None and categorizer.kind == "llm" and categorizer.model:
            seen.append(categorizer.model)
        return list(dict.fromkeys(seen))

    def provider_of(self, model: str) -> ProviderSpec:
        return self.providers[model.split("/", 1)[0]]


def _is_prompt_file(text: str) -> bool:
    return bool(text) and "\n" not in text and text.endswith((".txt", ".md"))


class ProjectError(ValueError):
    """The project file is missing or invalid; the message lists every problem."""


def project_file() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_PROJECT_FILE).expanduser().resolve()


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def problems(config: ProjectConfig, env: dict[str, str] | None = None) -> list[str]:
    """What is wrong beyond the schema: unknown providers, missing keys, missing prompt files,
    rubrics that do not exist."""
    env = dict(os.environ) if env is None else env
    found = []
    known = ", ".join(sorted(config.providers))
    models = [(f"app_versions[{i}].model", v.model) for i, v in enumerate(config.app_versions)]
    models += [(f"judges.panel[{i}]", m) for i, m in enumerate(config.judges.panel)]
    models += [(f"judges.pairwise[{i}]", m) for i, m in enumerate(config.judges.pairwise or [])]
    if config.judges.suggester:
        models.append(("judges.suggester", config.judges.suggester))
    for where, model in models:
        if "/" not in model:
            found.append(f"{where}: '{model}' is not a litellm model string (provider/model)")
        elif model.split("/", 1)[0] not in config.providers:
            found.append(
                f"{where}: provider '{model.split('/', 1)[0]}' is not under providers (known: {known}); "
                "add it there"
            )
    for name, provider in config.providers.items():
        if provider.api_key_env and not env.get(provider.api_key_env):
            found.append(
                f"providers.{name}.api_key_env: the environment variable {provider.api_key_env} is "
                "not set; export it (the key itself never goes in this file)"
            )
    for i, v in enumerate(config.app_versions):
        if _is_prompt_file(v.system_prompt) and not config.path(v.system_prompt).is_file():
            found.append(f"app_versions[{i}].system_prompt: no file {config.path(v.system_prompt)}")
    for key in ("rubric", "dimensional_rubric", "graded_rubric"):
        name = getattr(config.judges, key)
        if name and not (RUBRIC_DIR / f"{name}.yaml").is_file():  # judging/rubrics
            found.append(f"judges.{key}: no rubric '{name}' (judging/rubrics/{name}.yaml)")
    if config.synthetic is not None:
        found += _synthetic_problems(config)
    for mode, definition in config.judges.failure_modes.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]{0,63}", mode) or not str(definition).strip():
            found.append(
                f"judges.failure_modes.{mode}: a mode is a taxonomy name (a-z, 0-9, _) with a "
                "definition its judge's rubric states"
            )
    if (quorum := config.judges.quorum) > len(config.judges.panel):
        found.append(
            f"judges.quorum: {quorum} is more than the panel's {len(config.judges.panel)} judges"
        )
    for name, provider in config.providers.items():
        if provider.handler and _missing(provider.handler):
            found.append(f"providers.{name}.handler: no module {provider.handler}")
    if config.source.kind not in ("simulator",) and not config.source.path:
        found.append(
            f"source.path: a {config.source.kind} source needs the folder of your exported traces"
        )
    categorizer = config.taxonomy.categorizer
    if categorizer is not None and categorizer.kind == "llm":
        prefix = categorizer.model.split("/", 1)[0]
        if not categorizer.model:
            found.append("taxonomy.categorizer.model: an llm categorizer needs a litellm model")
        elif prefix not in config.providers:
            found.append(
                f"taxonomy.categorizer.model: provider '{prefix}' is not under providers "
                f"(known: {', '.join(sorted(config.providers))})"
            )
    if config.engine == "spark":
        if config.span_format is not None:
            found.append(
                f"engine: spark reads flat records (source kind files, or the simulator writing "
                f"them); a {config.span_format} span export is read by engine duckdb"
            )
        if categorizer is not None:
            found.append(
                "engine: spark does not run taxonomy.categorizer (it rewrites stored traces); "
                "use engine duckdb, or categories from the source"
            )
    if UNCATEGORIZED in config.taxonomy.categories:
        found.append(f"taxonomy.categories: '{UNCATEGORIZED}' is the stratum of traces without one")
    gates = config.online_gates
    for name in ("shadow", "canary"):
        if getattr(gates, name) and not (
            config.version("candidate") and config.version("baseline")
        ):
            found.append(
                f"online_gates.{name}: compares the app version with role candidate against the "
                "one with role baseline (the control); give both roles under app_versions"
            )
    return found


# ---- the synthetic inputs' dimension file (a part of the deployment's configuration) -------


class DimensionError(ValueError):
    """A dimension file that cannot be used, with what to change."""


@dataclass(frozen=True)
class Dimensions:
    product: str
    category: str  # the dimension whose values are task categories
    values: dict[str, list[str]]

    @property
    def names(self) -> list[str]:
        return list(self.values)


def load_dimensions(path: Path, categories: list[str]) -> Dimensions:
    """Read and check a dimension file against the taxonomy's `categories`."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise DimensionError(f"{path} is not YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("dimensions"), dict):
        raise DimensionError(f"{path}: needs a mapping 'dimensions: {{name: [values]}}'")
    values: dict[str, list[str]] = {}
    for name, vals in data["dimensions"].items():
        if not isinstance(vals, list) or not vals:
            raise DimensionError(f"{path}: dimension {name!r} needs a non-empty list of values")
        names = [str(v) for v in vals]
        if len(set(names)) != len(names):
            raise DimensionError(f"{path}: dimension {name!r} repeats a value")
        values[str(name)] = names
    category = str(data.get("category") or "")
    if category not in values:
        raise DimensionError(
            f"{path}: 'category' must name the dimension whose values are task categories "
            f"(one of {list(values)})"
        )
    unknown = sorted(set(values[category]) - set(categories))
    if unknown:
        raise DimensionError(
            f"{path}: values of {category!r} must be taxonomy categories; unknown: {unknown} "
            f"(taxonomy: {categories})"
        )
    return Dimensions(str(data.get("product") or "the product"), category, values)


def _synthetic_problems(config: ProjectConfig) -> list[str]:
    """The synthetic block's models, rubric and dimension file."""
    spec = config.synthetic
    assert spec is not None
    found = []
    for where, model in [("synthetic.generator", spec.generator)] + [
        (f"synthetic.filter_judges[{i}]", m) for i, m in enumerate(spec.filter_judges)
    ]:
        if model.split("/", 1)[0] not in config.providers:
            found.append(f"{where}: provider of '{model}' is not under providers")
    if not (RUBRIC_DIR / f"{spec.filter_rubric}.yaml").is_file():
        found.append(f"synthetic.filter_rubric: no rubric '{spec.filter_rubric}'")
    path = config.path(spec.dimensions)
    if not path.is_file():
        found.append(f"synthetic.dimensions: no file {path}")
    else:
        try:
            dims = load_dimensions(path, config.taxonomy.categories)
            if spec.tuples < spec.floor * max(len(v) for v in dims.values.values()):
                found.append(
                    f"synthetic.tuples: {spec.tuples} tuples cannot give each of "
                    f"{max(len(v) for v in dims.values.values())} values {spec.floor} (floor)"
                )
        except DimensionError as exc:
            found.append(f"synthetic.dimensions: {exc}")
    return found


def _missing(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows at `loc` (for "did you mean" on a typo)."""
    model: Any = ProjectConfig
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if isinstance(part, int) or str(part) not in fields:
            continue  # a list index, or a mapping key such as a provider's name
        ann = fields[str(part)].annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        model = next(
            (a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
    return [k for k in getattr(model, "model_fields", {}) if k != "base_dir"]


def load_project(path: Path | None = None, env: dict[str, str] | None = None) -> ProjectConfig:
    """Read and validate the project file; raises ProjectError listing every problem."""
    path = Path(path) if path else project_file()
    shown = path.name
    if not path.is_file():
        raise ProjectError(
            f"{shown}: no project file at {path}. Write one with `evals init`, or point "
            f"{CONFIG_ENV} at it."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as exc:
        raise ProjectError(f"{shown}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProjectError(f"{shown}: the file must be a mapping of keys (source, judges, ...)")
    raw = _extended(raw, path, shown)
    try:
        config = ProjectConfig.model_validate({**raw, "base_dir": str(path.parent)})
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(e["loc"][-1]), _keys_at(e["loc"][:-1]), 1)
                msg = "unknown key" + (
                    f" (did you mean '{close[0]}'?)"
                    if close
                    else " (see `evals init` for every key)"
                )
            lines.append(f"{shown}: {_loc(e['loc'])}: {msg}")
        raise ProjectError("\n".join(lines)) from None
    found = problems(config, env)
    if found:
        raise ProjectError("\n".join(f"{shown}: {p}" for p in found))
    return config


def _extended(raw: dict[str, Any], path: Path, shown: str, seen: tuple[Path, ...] = ()) -> dict:
    """`extends: other.yaml` (relative to this file): the other file's keys, with this file's
    mappings merged over them key by key (a list, a value or an empty mapping replaces). One
    file can then say only how it differs, e.g. the demo on Spark (evals.spark.yaml).
    A relative path resolves against the folder of the file that names it."""
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    base = (path.parent / str(base_name)).resolve()
    if base in seen or base == path.resolve():
        raise ProjectError(f"{shown}: extends: {base_name} extends this file again (a cycle)")
    if not base.is_file():
        raise ProjectError(f"{shown}: extends: no project file at {base}")
    try:
        parent = yaml.safe_load(base.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as exc:
        raise ProjectError(f"{base.name}: not valid YAML: {exc}") from exc
    if not isinstance(parent, dict):
        raise ProjectError(f"{base.name}: the file must be a mapping of keys")
    parent = _extended(parent, base, base.name, (*seen, path.resolve()))
    return _merged(_anchored(parent, base.parent), raw)


def _anchored(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The file paths a project file names, made absolute against its own folder, so that a
    file extending it from elsewhere still finds them (a prompt file, the traces, the
    reviewed references, the dimension file, a local lake)."""

    def fix(value: Any) -> Any:
        if (
            isinstance(value, str)
            and value
            and "://" not in value
            and not Path(value).is_absolute()
        ):
            return str((folder / Path(value).expanduser()).resolve())
        return value

    out = dict(raw)
    for section, key in (
        ("source", "path"),
        ("source", "references"),
        ("synthetic", "dimensions"),
        ("spark", "lake"),
    ):
        if isinstance(out.get(section), dict) and key in out[section]:
            out[section] = {**out[section], key: fix(out[section][key])}
    if isinstance(out.get("app_versions"), list):
        out["app_versions"] = [
            {**v, "system_prompt": fix(v["system_prompt"])}
            if isinstance(v, dict) and _is_prompt_file(str(v.get("system_prompt") or ""))
            else v
            for v in out["app_versions"]
        ]
    return out


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if value and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


@lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int) -> ProjectConfig:
    return load_project(Path(path))


class ProjectResource(ConfigurableResource):
    """The project file as a resource: every asset, sensor and schedule reads the deployment's
    choices (panel, versions, thresholds, limits) from here."""

    path: str = Field(
        default="", description=f"Project file; empty means ${CONFIG_ENV} or evals.yaml."
    )

    def config(self) -> ProjectConfig:
        p = Path(self.path).resolve() if self.path else project_file()
        return _cached(str(p), p.stat().st_mtime_ns if p.exists() else 0)
