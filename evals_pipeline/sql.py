"""SQL models kept as files beside their stage (`<stage>/sql/<name>.sql`).

A model names tables by their record in `records.py` (`{{ SEGMENT_REPORT }}`), so renaming a
table there renames it in every model; an unknown record name fails when the model is loaded.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from evals_pipeline import records

_RECORD = re.compile(r"\{\{\s*([A-Z][A-Z0-9_]*)\s*\}\}")


def render(text: str, where: str = "SQL") -> str:
    """`text` with every `{{ RECORD }}` replaced by that table's or view's name."""

    def name(match: re.Match[str]) -> str:
        found = getattr(records, match.group(1), None)
        if not isinstance(found, records.Table | records.View):
            raise KeyError(
                f"{where}: {{{{ {match.group(1)} }}}} is not a table or view in records.py"
            )
        return found.name

    return _RECORD.sub(name, text)


@cache
def load_sql(stage_file: str, name: str) -> str:
    """The model `name` of the stage whose module is `stage_file` (pass `__file__`)."""
    path = Path(stage_file).parent / "sql" / f"{name}.sql"
    return render(path.read_text(encoding="utf-8"), str(path))
