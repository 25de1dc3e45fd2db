"""The failure taxonomy: open-coding notes (critiques) grouped into failure modes.

The taxonomy is one versioned JSON file (`data/taxonomy/failure_modes.json`; each version is
also kept under `versions/`): canonical modes with a definition and the aliases they absorbed.
Label files are append-only, so renaming or merging never rewrites a label: a merged or
renamed name becomes an alias and every reader resolves names through the file. A mode an
expert types that is not in the file yet is "undefined" until someone defines it.

Edits are optimistic: the caller says which version it edited, and a stale edit (someone
else changed the file meanwhile) is refused with the current version, never merged blindly.

File format:

    {"version": 3, "updated_at": "2026-11-23T10:00:00Z",
     "modes": {"hallucination": {"definition": "States facts the references contradict.",
                                 "aliases": ["made_up_facts"]}},
     "history": [{"version": 3, "at": "...", "by": "dana", "action": "merge",
                  "detail": {"sources": ["made_up_facts"], "into": "hallucination"}}]}
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from evals_pipeline.paths import taxonomy_path

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
UNASSIGNED = "unassigned"


class TaxonomyError(ValueError):
    """An edit that cannot be applied (bad name, unknown mode, ...): the message says why."""


class StaleTaxonomy(TaxonomyError):
    """The file changed since the editor loaded it."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"the taxonomy is at version {current}, your edit was made on version {expected}: "
            "reload to see the other changes, then edit again"
        )
        self.current = current


def normalize_name(raw: str) -> str:
    """'Wrong Steps' -> 'wrong_steps'. Raises TaxonomyError for names that cannot be modes."""
    name = re.sub(r"[\s\-/]+", "_", (raw or "").strip().lower())
    name = re.sub(r"_+", "_", name).strip("_")
    if not NAME_RE.match(name):
        raise TaxonomyError(
            f"{raw!r} is not a usable failure mode name: use 1-64 letters, digits and underscores"
        )
    if name == UNASSIGNED:
        raise TaxonomyError(f"{UNASSIGNED!r} is reserved for fails without a failure mode")
    return name


@dataclass
class Taxonomy:
    version: int = 0
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    updated_at: str | None = None

    def alias_index(self) -> dict[str, str]:
        index = {alias: name for name, m in self.modes.items() for alias in m.get("aliases", [])}
        index.update({name: name for name in self.modes})
        return index

    def resolve(self, raw: str | None) -> tuple[str, bool]:
        """(canonical name, defined in the file) for a label's failure_mode."""
        if raw is None or not str(raw).strip():
            return UNASSIGNED, False
        try:
            name = normalize_name(str(raw))
        except TaxonomyError:
            return str(raw).strip(), False
        canonical = self.alias_index().get(name)
        return (canonical, True) if canonical else (name, False)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "updated_at": self.updated_at,
            "modes": self.modes,
            "history": self.history,
        }


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    path = path or taxonomy_path()
    if not path.exists():
        return Taxonomy()
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))  # an editor's BOM is not content
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaxonomyError(
            f"{path} is not valid JSON ({exc}); fix or restore it from versions/"
        ) from exc
    return Taxonomy(
        version=int(raw.get("version", 0)),
        modes={
            k: {"definition": v.get("definition", ""), "aliases": list(v.get("aliases", []))}
            for k, v in raw.get("modes", {}).items()
        },
        history=list(raw.get("history", [])),
        updated_at=raw.get("updated_at"),
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, tax: Taxonomy) -> None:
    text = json.dumps(tax.to_json(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    versions = path.parent / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (versions / f"{path.stem}.v{tax.version:04d}.json").write_text(text, encoding="utf-8")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # readers see the old or the new file, never half of one


def _apply(tax: Taxonomy, action: str, detail: dict[str, Any]) -> dict[str, Any]:
    """Change `tax` in place; returns the normalized detail recorded in the history."""
    modes = tax.modes
    index = tax.alias_index()

    def take(name: str) -> tuple[str, dict[str, Any]]:
        """A source mode by any of its names; an undefined (label-only) name is a bare mode."""
        n = normalize_name(name)
        canonical = index.get(n, n)
        return canonical, modes.get(canonical, {"definition": "", "aliases": []})

    if action == "define":
        name = normalize_name(detail.get("name", ""))
        canonical = index.get(name, name)
        definition = str(detail.get("definition", "")).strip()
        if not definition:
            raise TaxonomyError("a definition cannot be empty")
        modes.setdefault(canonical, {"definition": "", "aliases": []})["definition"] = definition
        return {"name": canonical, "definition": definition}
    if action == "rename":
        old, mode = take(detail.get("name", ""))
        new = normalize_name(detail.get("new_name", ""))
        if new == old:
            raise TaxonomyError(f"{old!r} already has that name")
        if new in index:
            raise TaxonomyError(f"{new!r} is already a mode or an alias: merge instead of renaming")
        modes.pop(old, None)
        modes[new] = {"definition": mode["definition"], "aliases": sorted({*mode["aliases"], old})}
        return {"name": old, "new_name": new}
    if action == "merge":
        into = normalize_name(detail.get("into", ""))
        into = index.get(into, into)
        sources = [take(s) for s in detail.get("sources", [])]
        sources = [(n, m) for n, m in sources if n != into]
        if not sources:
            raise TaxonomyError("choose at least one mode to merge into another")
        target = modes.setdefault(into, {"definition": "", "aliases": []})
        for name, mode in sources:
            target["aliases"] = sorted({*target["aliases"], *mode["aliases"], name})
            if not target["definition"] and mode["definition"]:
                target["definition"] = mode["definition"]
            modes.pop(name, None)
        if detail.get("definition"):
            target["definition"] = str(detail["definition"]).strip()
        return {"sources": [n for n, _ in sources], "into": into}
    raise TaxonomyError(f"unknown taxonomy action {action!r} (define, rename, merge)")


def edit_taxonomy(
    action: str,
    detail: dict[str, Any],
    by: str,
    expected_version: int | None,
    path: Path | None = None,
) -> Taxonomy:
    """Apply one edit under a file lock and write a new version. `expected_version` is the
    version the editor saw (None skips the check, for scripts)."""
    path = path or taxonomy_path()
    with _locked(path):
        tax = load_taxonomy(path)
        if expected_version is not None and expected_version != tax.version:
            raise StaleTaxonomy(expected_version, tax.version)
        recorded = _apply(tax, action, detail)
        tax.version += 1
        tax.updated_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        tax.history.append(
            {
                "version": tax.version,
                "at": tax.updated_at,
                "by": by,
                "action": action,
                "detail": recorded,
            }
        )
        _write(path, tax)
    return tax


def mode_map(tax: Taxonomy, names: list[str | None]) -> pd.DataFrame:
    """raw failure_mode -> canonical name and whether it is defined, for a SQL join."""
    rows = [(n, *tax.resolve(n)) for n in dict.fromkeys(names)]
    return pd.DataFrame(rows, columns=["raw", "failure_mode", "defined"]).astype(
        {"raw": "object", "failure_mode": "object", "defined": "bool"}
    )


def mode_summary(tax: Taxonomy, fails: pd.DataFrame, examples: int = 3) -> pd.DataFrame:
    """One row per failure mode (the file's and the labels'): count, definition, aliases and a
    few example critiques. `fails`: current fail labels with failure_mode and critique."""
    resolved = fails.assign(
        mode=[tax.resolve(m)[0] for m in fails["failure_mode"]] if len(fails) else []
    )
    rows = []
    for name in sorted(set(tax.modes) | set(resolved["mode"])):
        part = resolved[resolved["mode"] == name]
        mode = tax.modes.get(name)
        rows.append(
            {
                "failure_mode": name,
                "defined": mode is not None,
                "definition": (mode or {}).get("definition", ""),
                "aliases": (mode or {}).get("aliases", []),
                "count": len(part),
                "examples": part["critique"].dropna().drop_duplicates().head(examples).tolist(),
            }
        )
    frame = pd.DataFrame(
        rows, columns=["failure_mode", "defined", "definition", "aliases", "count", "examples"]
    )
    return frame.sort_values(["count", "failure_mode"], ascending=[False, True], ignore_index=True)


def saturation(tax: Taxonomy, reviewed: pd.DataFrame, batch_size: int = 50) -> pd.DataFrame:
    """New failure modes discovered per batch of reviewed outputs, in review order. When
    batches stop adding modes, open coding has saturated. `reviewed`: one row per reviewed
    subject with labelled_at, verdict and failure_mode."""
    if reviewed.empty:
        return pd.DataFrame(
            columns=["batch", "reviewed", "fails", "new_modes", "total_modes", "new"]
        )
    ordered = reviewed.sort_values("labelled_at", kind="stable", ignore_index=True)
    seen: set[str] = set()
    rows = []
    for start in range(0, len(ordered), batch_size):
        part = ordered.iloc[start : start + batch_size]
        fails = part[part["verdict"] == "fail"]
        modes = [tax.resolve(m)[0] for m in fails["failure_mode"]]
        new = sorted({m for m in modes if m != UNASSIGNED} - seen)
        seen.update(new)
        rows.append(
            {
                "batch": start // batch_size + 1,
                "reviewed": start + len(part),
                "fails": len(fails),
                "new_modes": len(new),
                "total_modes": len(seen),
                "new": new,
            }
        )
    return pd.DataFrame(rows)
