"""Errors of endpoint health (:mod:`stream_wfm.health`)."""

from __future__ import annotations

from stream_wfm.errors import StreamWfmError

__all__ = ["InvalidHealthRecordError"]


class InvalidHealthRecordError(StreamWfmError):
    """A record of the health or notices topic is not one this version understands."""
