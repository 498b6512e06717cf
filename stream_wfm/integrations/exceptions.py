"""Errors of integration config validation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stream_wfm.errors import StreamWfmError

__all__ = ["ConfigValidationError", "FieldError"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem of a config: ``field`` is a top-level config field name, or
    ``""`` when the problem is the record as a whole (not JSON, unknown field,
    missing key...). ``message`` never contains a header value."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ConfigValidationError(StreamWfmError):
    """An integration config is invalid.

    ``str(err)`` is one line: ``invalid integration config: <field>: <message>; ...``.
    """

    retriable = False

    def __init__(self, field_errors: Iterable[FieldError]) -> None:
        self.field_errors: list[FieldError] = list(field_errors)
        if not self.field_errors:
            self.field_errors = [FieldError("", "invalid")]
        super().__init__(
            "invalid integration config: " + "; ".join(str(e) for e in self.field_errors)
        )

    @classmethod
    def single(cls, field: str, message: str) -> ConfigValidationError:
        return cls([FieldError(field, message)])

    def by_field(self) -> dict[str, list[str]]:
        """Messages grouped by field name (for showing them next to form fields)."""
        grouped: dict[str, list[str]] = {}
        for error in self.field_errors:
            grouped.setdefault(error.field, []).append(error.message)
        return grouped
