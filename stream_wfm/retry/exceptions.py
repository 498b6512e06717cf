"""Errors of the dead-letter tools (:mod:`~stream_wfm.retry.dead_letters`,
:mod:`~stream_wfm.retry.redrive`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_wfm.errors import StreamWfmError

if TYPE_CHECKING:
    from stream_wfm.retry.redrive import RedriveReport

__all__ = ["DlqError", "RedriveError"]


class DlqError(StreamWfmError):
    """The DLQ topic could not be read, or a redrive was not acknowledged."""


class RedriveError(DlqError):
    """Some retry records of a redrive were not acknowledged; ``report`` says which."""

    def __init__(self, message: str, report: RedriveReport) -> None:
        super().__init__(message)
        self.report = report
