"""The root of stream-wfm's exceptions.

Every error the service raises on purpose derives from :class:`StreamWfmError`.
Errors carry a ``retriable`` flag so that policy code reads a flag instead of
listing types (the aiokafka convention).
"""

from __future__ import annotations


class StreamWfmError(Exception):
    """Root of all stream-wfm errors."""

    retriable: bool = False


class SettingsError(StreamWfmError):
    """A setting is missing or invalid; the message names the setting."""
