"""SQL models kept as files beside their stage (`<stage>/sql/<name>.sql`).

A model names tables by their record in `evals_pipeline.records` (`{{ SEGMENT_REPORT }}`), so renaming a
table there renames it in every model; an unknown record name fails when the model is loaded.
Lower-case placeholders (`{{ split }}`) are SQL fragments the caller passes by name (computed
expressions such as a seeded hash); a missing one fails too.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from evals_pipeline import records

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}")


def render(text: str, where: str = "SQL", **fragments: str) -> str:
    """`text` with every `{{ RECORD }}` replaced by that table's or view's name and every
    `{{ fragment }}` by the SQL passed under that name."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.islower():
            if key not in fragments:
                raise KeyError(f"{where}: no SQL given for {{{{ {key} }}}}")
            return fragments[key]
        found = getattr(records, key, None)
        if not isinstance(found, records.Table | records.View):
            raise KeyError(
                f"{where}: {{{{ {key} }}}} is not a table or view in evals_pipeline.records"
            )
        return found.name

    return _PLACEHOLDER.sub(fill, text)


def load_sql(stage_file: str, name: str, **fragments: str) -> str:
    """The model `name` of the stage whose module is `stage_file` (pass `__file__`)."""
    path = Path(stage_file).parent / "sql" / f"{name}.sql"
    return render(_read(path), str(path), **fragments)


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
