"""The root of stream-wfm's exceptions.

Every error the service raises on purpose derives from :class:`StreamWfmError`.
Errors carry a ``retriable`` flag so that policy code reads a flag instead of
listing types (the aiokafka convention). It is read by:

* :func:`stream_wfm.delivery.outcome.outcome_for_error`: a delivery attempt that
  got no response (:mod:`stream_wfm.delivery.exceptions`) is retryable or, with
  the error's ``reason``, permanent;
* :mod:`stream_wfm.pipeline.settle`: a retry or dead-letter record whose write
  failed is written again, or not.

``delivery`` and ``integrations`` keep their errors in an ``exceptions`` module each
(the quix-streams convention).
"""

from __future__ import annotations


class StreamWfmError(Exception):
    """Root of all stream-wfm errors."""

    retriable: bool = False


class SettingsError(StreamWfmError):
    """A setting is missing or invalid; the message names the setting."""
