"""Re-enable runs in the background, one at a time per account (docs/contract.md §10, §9).

``Re-enable`` writes the integration back enabled and redrives the dead letters of its
failure period at 50 a second (:func:`stream_wfm.health.reenable.reenable`): minutes,
for a long failure. The console runs it in a thread of its own and the page polls its
progress. :meth:`ReenableJobs.start` runs on the event loop (so check-and-start is
atomic there): while an account's job runs, another click gets that same job, never a
second redrive. The last job of each account is kept, so its page can show the result.

The thread is a daemon: stopping the console does not wait minutes for a redrive. A
redrive cut short that way has already enabled the integration (the config is written
first); the dead letters left can be redriven from the account's dead-letters page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from stream_wfm.health.exceptions import ReenableError
from stream_wfm.health.reenable import ReenableResult, reenable
from stream_wfm.settings import Settings

log = logging.getLogger(__name__)


class ReenableFn(Protocol):
    """:func:`~stream_wfm.health.reenable.reenable`, or a stand-in (tests)."""

    def __call__(
        self,
        settings: Settings,
        account_id: str,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReenableResult: ...


@dataclass(slots=True)
class ReenableJob:
    """One re-enable of one account. Written by its thread, read by the pages: each
    field is replaced in one assignment (``counts`` holds done and total together)."""

    account_id: str
    user: str | None
    started_at: float
    counts: tuple[int, int] | None = None  # dead letters redriven so far, of how many
    result: ReenableResult | None = None
    error: str | None = None
    enabled: bool = False  # the integration was written back enabled (error or not)
    finished_at: float | None = None
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    def progress(self, done: int, total: int) -> None:
        self.counts = (done, total)


class ReenableJobs:
    """The re-enable jobs of one console, by account."""

    def __init__(
        self,
        settings: Settings,
        run: ReenableFn = reenable,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._run = run
        self._clock = clock
        self._jobs: dict[str, ReenableJob] = {}

    def get(self, account_id: str) -> ReenableJob | None:
        return self._jobs.get(account_id)

    def running(self, account_id: str) -> ReenableJob | None:
        job = self._jobs.get(account_id)
        return job if job is not None and job.running else None

    def start(self, account_id: str, user: str | None) -> tuple[ReenableJob, bool]:
        """The account's running job, or a new one started now; True when started now.
        Call from one thread only (the event loop)."""
        running = self.running(account_id)
        if running is not None:
            return running, False
        job = ReenableJob(account_id=account_id, user=user, started_at=self._clock())
        self._jobs[account_id] = job
        thread = threading.Thread(
            target=self._work, args=(job,), name=f"reenable-{account_id[:32]}", daemon=True
        )
        thread.start()
        return job, True

    def _work(self, job: ReenableJob) -> None:
        try:
            result = self._run(self._settings, job.account_id, progress=job.progress)
        except ReenableError as exc:
            job.error, job.enabled = str(exc), exc.enabled
            log.warning(
                "console re-enable failed",
                extra={"account_id": job.account_id, "user": job.user, "error": str(exc)},
            )
        except Exception:  # the thread's last resort: the page must learn it ended
            job.error = "an unexpected error stopped it (see the console's log)"
            log.exception("console re-enable crashed", extra={"account_id": job.account_id})
        else:
            job.result, job.enabled = result, True
            log.info(
                "integration re-enabled from the console",
                extra={
                    "account_id": job.account_id,
                    "user": job.user,
                    "redriven": result.redriven,
                    "skipped": result.skipped,
                },
            )
        finally:
            job.finished_at = self._clock()
            job.finished.set()
