"""The errors of :mod:`stream_wfm.delivery`.

Each carries ``retriable`` (from :class:`~stream_wfm.errors.StreamWfmError`) and, for
the permanent ones, ``reason``: the dead-letter reason. Policy code reads those flags
instead of listing types.

A transport's ``send`` does not raise for I/O: what its HTTP client or the OS
raises (``OSError``, ``TimeoutError``, aiohttp's and pyreqwest's errors) is wrapped
into a :class:`NoResponseError` where the transport catches it, and
:func:`stream_wfm.delivery.outcome.outcome_for_error` turns that into the attempt's
:class:`~stream_wfm.delivery.outcome.Outcome`.

* :class:`DeliveryError` — the root.

  * :class:`UnformattableEventError` — the event cannot become a request; dead-lettered.
  * :class:`NoResponseError` — an attempt that got no HTTP response to classify.

    * :class:`ConnectionFailedError` — DNS, refused, reset, TLS...: retried.

      * :class:`ProtocolError` — the bytes back are not a valid HTTP/1.1 response.
      * :class:`IncompleteResponseError` — closed before the response was complete.
      * :class:`UnencodableRequestError` — the request cannot be put on the wire (h1).

    * :class:`DeliveryTimeoutError` — no response within the request's timeout: retried.
    * :class:`DestinationRefusedError` — the destination guard refused the address.
"""

from __future__ import annotations

from typing import ClassVar

from stream_wfm.errors import StreamWfmError

__all__ = [
    "ConnectionFailedError",
    "DeliveryError",
    "DeliveryTimeoutError",
    "DestinationRefusedError",
    "IncompleteResponseError",
    "NoResponseError",
    "ProtocolError",
    "UnencodableRequestError",
    "UnformattableEventError",
]


class DeliveryError(StreamWfmError):
    """Root of the delivery errors. ``reason`` is the dead-letter reason of the
    ones that are not retriable."""

    reason: ClassVar[str | None] = None


class UnformattableEventError(DeliveryError):
    """The event's payload cannot be encoded (e.g. a field nested more deeply
    than the JSON encoder allows). Not retriable: dead-letter the event with
    :attr:`reason`."""

    retriable = False
    reason = "unformattable_event"

    def __init__(self, detail: str) -> None:
        super().__init__(f"cannot format event: {detail}")
        self.detail = detail


class NoResponseError(DeliveryError):
    """An attempt ended without an HTTP response. ``status_class`` is the attempt's
    ``status_class`` metrics label; :meth:`describe` its ``Outcome.error`` text."""

    retriable = True
    status_class: ClassVar[str] = "connection_error"

    def describe(self) -> str:
        return str(self)


class ConnectionFailedError(NoResponseError):
    """The request failed without a response (DNS, refused, reset, TLS...).

    Wraps ``cause``, what the client or the OS raised; ``describe()`` names it, or this
    error itself when there is no cause: ``connection error: ConnectionRefusedError: ...``.
    """

    def __init__(self, message: str = "", *, cause: BaseException | None = None) -> None:
        super().__init__(message or ("" if cause is None else str(cause)))
        self.cause = cause

    def describe(self) -> str:
        source = self if self.cause is None else self.cause
        text = str(source)
        name = type(source).__name__
        return f"connection error: {name}: {text}" if text else f"connection error: {name}"


class ProtocolError(ConnectionFailedError):
    """The server's bytes are not a valid HTTP/1.1 response, or came when none was due."""


class IncompleteResponseError(ConnectionFailedError):
    """The connection closed before the response was complete."""


class UnencodableRequestError(ConnectionFailedError):
    """A header contains CR or LF, or a header or host is not ASCII/Latin-1 (config
    validation prevents both). Counted and retried as a connection error."""


class DeliveryTimeoutError(NoResponseError):
    """No complete response within the request's timeout of ``seconds``."""

    status_class = "timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timeout after {seconds:g}s")
        self.seconds = seconds


class DestinationRefusedError(NoResponseError):
    """The destination guard refused the address (``detail``: e.g. ``10.0.0.1 is a
    private address``). Permanent: the request was not sent."""

    retriable = False
    reason = "destination_not_allowed"
    status_class = "destination_not_allowed"

    def __init__(self, detail: str) -> None:
        super().__init__(f"destination not allowed: {detail}")
        self.detail = detail
