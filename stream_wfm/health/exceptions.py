"""Errors of endpoint health (:mod:`stream_wfm.health`)."""

from __future__ import annotations

from stream_wfm.errors import StreamWfmError

__all__ = ["InvalidHealthRecordError", "NoIntegrationError", "ReenableError"]


class InvalidHealthRecordError(StreamWfmError):
    """A record of the health or notices topic is not one this version understands."""


class ReenableError(StreamWfmError):
    """An integration could not be re-enabled, or the dead letters of its failure period
    not redriven (docs/contract.md §10): the broker or a topic could not be read or written.

    ``enabled`` is true when the integration had already been written back enabled when the
    error happened (only the redrive failed); the message then says how to finish it.
    """

    def __init__(self, message: str, *, enabled: bool = False) -> None:
        super().__init__(message)
        self.enabled = enabled


class NoIntegrationError(ReenableError):
    """The account has no integration to re-enable."""
