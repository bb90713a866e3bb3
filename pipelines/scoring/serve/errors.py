"""The serve stage's errors: a request it refuses (HTTP 400) and a model it cannot serve."""

from __future__ import annotations

from typing import Any

from pipelines.common.errors import FlywheelError


class ServeError(FlywheelError):
    """The online endpoint cannot start or cannot serve the champion."""


class Unauthorized(ServeError):
    """A request without the configured bearer token (HTTP 401)."""


class InvalidRecord(ServeError, ValueError):
    """A request's record breaks a rule of the schema: names the field, the value and the rule.

    Answered with HTTP 400 and :meth:`detail` as the body.
    """

    def __init__(self, row: int | None, field: str | None, value: Any, rule: str) -> None:
        self.row, self.field, self.value, self.rule = row, field, value, rule
        where = "the request" if row is None else f"record {row}"
        thing = f"field {field!r} of {where}" if field else where
        super().__init__(f"{thing} = {_show(value)}: {rule}")

    def detail(self) -> dict[str, Any]:
        """The JSON body of the 400 answer."""
        return {
            "error": str(self),
            "record": self.row,
            "field": self.field,
            "value": self.value if _jsonable(self.value) else repr(self.value),
            "rule": self.rule,
        }


_SHOW = 60


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 3] + "..."


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
