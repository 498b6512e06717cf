"""Waiting keys spilled to disk when too many wait at once (docs/contract.md §11).

:class:`~stream_wfm.pipeline.order.KeyOrder` keeps up to ``order_keys_in_memory`` keys
in memory; during a long outage many more of an instance's keys may wait in the retry
tiers at once, and the keys over that number are kept here instead: in a SQLite file
(Python's standard library) in a directory of its own under the temporary directory
(``TMPDIR``), made when the first key is spilled and removed when the pipeline stops.
The file holds offsets, ordering keys (account and agent or call ids) and due times,
nothing of an event's content; it is rebuilt from the retry partitions after a
restart (:mod:`stream_wfm.pipeline.order_scan`), so it is written without a journal
or fsync.

Every call answers from the file, indexed by (input partition, key): a few
microseconds, paid only while something is spilled. A write that fails (a full
disk) raises ``sqlite3.Error``; the caller keeps the key in memory instead.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import NamedTuple

from stream_wfm.pipeline.commands import TP

__all__ = ["Spilled", "SpilledKeys"]


class Spilled(NamedTuple):
    """A spilled key's earliest waiting offset and its record due latest (tier, due)."""

    first_offset: int
    tier: int
    due_ms: int


_SCHEMA = """
CREATE TABLE waiting (
    topic TEXT NOT NULL, part INTEGER NOT NULL, key TEXT NOT NULL, off INTEGER NOT NULL,
    tier INTEGER NOT NULL, due_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, part, key, off)
) WITHOUT ROWID
"""
_WHERE_KEY = "topic = ? AND part = ? AND key = ?"


class SpilledKeys:
    """Waiting events of spilled keys, in a SQLite file. Runs on the event loop."""

    def __init__(self, directory: str | None = None) -> None:
        """``directory``: where the file's own directory is made (default: the
        temporary directory)."""
        self._parent = directory
        self._dir: Path | None = None
        self._db: sqlite3.Connection | None = None
        #: Waiting events spilled (0: nothing is, and nothing is asked of the file).
        self.events = 0

    def has(self, tp: TP, key: str) -> bool:
        if not self.events:
            return False
        row = (
            self._conn()
            .execute(f"SELECT 1 FROM waiting WHERE {_WHERE_KEY} LIMIT 1", (*tp, key))
            .fetchone()
        )
        return row is not None

    def wait(self, tp: TP, key: str, offset: int, tier: int, due_ms: int) -> None:
        """The event at ``offset`` waits in ``tier`` until ``due_ms`` (again, if it did)."""
        db = self._conn()
        with db:
            cursor = db.execute(
                f"UPDATE waiting SET tier = ?, due_ms = ? WHERE {_WHERE_KEY} AND off = ?",
                (tier, due_ms, *tp, key, offset),
            )
            if cursor.rowcount == 0:
                db.execute("INSERT INTO waiting VALUES (?, ?, ?, ?, ?, ?)",
                           (*tp, key, offset, tier, due_ms))  # fmt: skip
                self.events += 1

    def ahead(self, tp: TP, key: str) -> Spilled | None:
        """The key's earliest waiting offset and its latest-due record; None: none waits."""
        if not self.events:
            return None
        db = self._conn()
        first = db.execute(
            f"SELECT min(off) FROM waiting WHERE {_WHERE_KEY}", (*tp, key)
        ).fetchone()[0]
        if first is None:
            return None
        tier, due_ms = db.execute(
            f"SELECT tier, due_ms FROM waiting WHERE {_WHERE_KEY} ORDER BY due_ms DESC LIMIT 1",
            (*tp, key),
        ).fetchone()
        return Spilled(first, tier, due_ms)

    def done(self, tp: TP, key: str, offset: int) -> bool:
        """The event at ``offset`` no longer waits; True if it was spilled."""
        if not self.events:
            return False
        db = self._conn()
        with db:
            removed = db.execute(
                f"DELETE FROM waiting WHERE {_WHERE_KEY} AND off = ?", (*tp, key, offset)
            ).rowcount
        self.events -= removed
        return removed > 0

    def drop_key(self, tp: TP, key: str) -> int:
        """Forget the key's waiting events; how many there were."""
        return self._delete(_WHERE_KEY, (*tp, key))

    def forget(self, tp: TP) -> int:
        """Forget the partition's keys; how many waiting events there were."""
        return self._delete("topic = ? AND part = ?", tp)

    def keys(self) -> int:
        if not self.events:
            return 0
        count: int = (
            self._conn()
            .execute("SELECT count(*) FROM (SELECT DISTINCT topic, part, key FROM waiting)")
            .fetchone()[0]
        )
        return count

    def close(self) -> None:
        """Close and remove the file. Safe to call twice."""
        db, self._db = self._db, None
        if db is not None:
            db.close()
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        self.events = 0

    def _delete(self, where: str, args: tuple[object, ...]) -> int:
        if not self.events:
            return 0
        db = self._conn()
        with db:
            removed = db.execute(f"DELETE FROM waiting WHERE {where}", args).rowcount
        self.events -= removed
        return removed

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._dir = Path(tempfile.mkdtemp(prefix="stream-wfm-order-", dir=self._parent))
            db = sqlite3.connect(self._dir / "waiting.sqlite3", isolation_level=None)
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(_SCHEMA)
            self._db = db
        return self._db
