"""The retry policy (docs/contract.md §6), as pure functions.

Attempts are numbered from 1 (the first delivery attempt); retry *n* is
attempt *n + 1*. With tiers ``T[0..N-1]`` (``(name, delay_seconds)``, delays
non-decreasing, from ``STREAM_WFM_RETRY_BACKOFF``):

* Retry *n* uses tier ``i = min(n, N) - 1`` and is due at ``now + T[i].delay``.
* With a ``Retry-After`` of *r* seconds, the wanted delay is
  ``w = max(T[i].delay, min(r, T[N-1].delay))``: at least the tier's delay,
  at least *r*, never more than the last tier's delay. The record is due at
  ``now + w`` and goes to the first tier ``j >= i`` whose delay is ``>= w``
  (so a record never sits in a tier with a shorter delay than its own, where
  it would hold up the records behind it). Attempt numbering is not affected:
  the retry after that still uses ``min(n + 1, N) - 1`` or later.
* After an attempt: delivered → ``done``; permanent → ``dead_letter``;
  retryable → ``retry`` while the retries used so far (attempts made - 1) are
  fewer than ``max_retries``, else ``dead_letter`` (``retries_exhausted``).
  With ``max_retries = 1`` a 503 gives two attempts, then the DLQ.
* Except: a retryable outcome that is a 429 or carries a ``Retry-After`` →
  ``defer``: the attempt does not count (docs/contract.md §10); it is made again
  with the same number, from the tier of the retry before it (the first tier for
  attempt 1) and no earlier than the ``Retry-After``. Never a dead letter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from stream_wfm.delivery.outcome import Outcome, OutcomeKind

__all__ = ["Step", "next_step", "retry_due_at", "tier_for_attempt"]

Step = Literal["done", "retry", "defer", "dead_letter"]


def tier_for_attempt(attempt: int, n_tiers: int) -> int:
    """The 0-based tier index of retry ``attempt`` (1-based retry number)."""
    if n_tiers < 1:
        raise ValueError("at least one retry tier is required")
    return min(max(attempt, 1), n_tiers) - 1


def retry_due_at(
    now: float,
    attempt: int,
    tiers: Sequence[tuple[str, int]],
    retry_after: float | None,
) -> tuple[int, float]:
    """``(tier index, due unix time)`` of retry ``attempt`` (1-based retry
    number) scheduled at ``now``, honouring ``retry_after`` (seconds)."""
    index = tier_for_attempt(attempt, len(tiers))
    delay = float(tiers[index][1])
    if retry_after is None or not math.isfinite(retry_after) or retry_after <= delay:
        return index, now + delay
    wanted = max(delay, min(retry_after, float(tiers[-1][1])))
    while index < len(tiers) - 1 and tiers[index][1] < wanted:
        index += 1
    return index, now + wanted


def next_step(attempts_done: int, max_retries: int, outcome: Outcome) -> Step:
    """What to do after attempt number ``attempts_done`` ended with ``outcome``."""
    if outcome.kind is OutcomeKind.DELIVERED:
        return "done"
    if outcome.kind is OutcomeKind.PERMANENT:
        return "dead_letter"
    if outcome.status == 429 or outcome.retry_after is not None:
        return "defer"
    return "retry" if attempts_done - 1 < max_retries else "dead_letter"
