"""What the review app accepts in a request body, as pydantic models: anything else is a
400 that says which field is wrong, never a 500 or a silently coerced value."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelBody(_Body):
    queue: StrictStr = Field(max_length=64)
    item_id: StrictStr = Field(max_length=1024)
    verdict: StrictStr = Field(max_length=16)
    critique: StrictStr = ""
    failure_mode: StrictStr = Field(default="", max_length=200)
    prepared_at: StrictStr = Field(default="", max_length=64)


class TaxonomyBody(_Body):
    action: Literal["define", "rename", "merge"]
    detail: dict[str, Any]
    version: StrictInt | None = None


class DefineDetail(_Body):
    name: StrictStr = Field(max_length=200)
    definition: StrictStr = Field(max_length=5_000)


class RenameDetail(_Body):
    name: StrictStr = Field(max_length=200)
    new_name: StrictStr = Field(max_length=200)


class MergeDetail(_Body):
    into: StrictStr = Field(max_length=200)
    sources: list[StrictStr] = Field(min_length=1, max_length=500)
    definition: StrictStr = Field(default="", max_length=5_000)


TAXONOMY_DETAILS: dict[str, type[_Body]] = {
    "define": DefineDetail,
    "rename": RenameDetail,
    "merge": MergeDetail,
}

BodyT = TypeVar("BodyT", bound=BaseModel)


class BodyError(ValueError):
    """The body is not what the endpoint accepts; the message names the field."""


def parse_body(raw: bytes, model: type[BodyT]) -> BodyT:
    """`raw` JSON validated as `model`; raises BodyError with a readable message."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BodyError("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BodyError("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise BodyError(problems) from exc
