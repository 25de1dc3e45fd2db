"""The building blocks of the catalogue: field specs of incoming records, tables with
commented columns (their DDL), and views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["string", "timestamp", "number", "integer", "text_or_messages", "json"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: FieldKind
    required: bool
    # Text-bearing fields are checked against the oversized-field limit.
    text: bool = False
    # Numbers below this are quarantined as out_of_range (None: any finite number).
    minimum: float | None = None
    # text_or_messages: the role a message list must contain (the user's turn of an input,
    # the assistant's answer of an output).
    speaker: str = "user"


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    comment: str
    # When a run happened or how long a call took: differs between two runs on the same data,
    # so comparisons of results (`analytics.snapshot.content_digest`) leave it out.
    run_time: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    comment: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    def ddl(self, schema: str | None = None) -> str:
        cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        if self.primary_key:
            cols += f",\n  PRIMARY KEY ({', '.join(self.primary_key)})"
        qualified = f"{schema}.{self.name}" if schema else self.name
        return f"CREATE TABLE IF NOT EXISTS {qualified} (\n  {cols}\n)"

    def comment_sql(self, schema: str | None = None) -> list[str]:
        qualified = f"{schema}.{self.name}" if schema else self.name
        out = [f"COMMENT ON TABLE {qualified} IS {sql_literal(self.comment)}"]
        out += [
            f"COMMENT ON COLUMN {qualified}.{c.name} IS {sql_literal(c.comment)}"
            for c in self.columns
        ]
        return out

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __str__(self) -> str:
        # SQL names a table through its record (f"FROM {TRACES}"), so a rename is one line here.
        return self.name


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class View:
    """A view the pools stage publishes so no later stage writes the seal's filter by hand."""

    name: str
    comment: str
    sql: str
    tables: tuple[Table, ...]

    def ddl(self) -> str:
        return f"CREATE OR REPLACE VIEW {self.name} AS {self.sql}"

    def __str__(self) -> str:
        return self.name
