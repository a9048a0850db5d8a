"""The agent's on-disk outbox: every report and command ack waits here until it is safe.

One SQLite file (WAL) with one row per message and its position `(boot, seq)`. What "safe"
means depends on the server (docs/protocol.md §11):

- a server that sends **receipts** (§11.1) confirms the positions it has committed to its
  database; a row is deleted only then. The broker's PUBACK only means the broker has it, and
  a broker that crashes before handing it on, or before writing its store, forgets it: such a
  row is sent again after a reconnect (and, failing a receipt, after `receipt_timeout_s`);
- with a server that has never sent one (older than 2026-12), a row is deleted at the broker's
  PUBACK, as before.

Either way a row the broker answers with 0x10 "no matching subscribers" is kept and sent again
shortly: nobody received it. The outbox is bounded: beyond `max_rows` the oldest rows are
dropped (logged and counted).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Added in 2026-12 (receipts); rows from before have none and are deleted at PUBACK.
_COLUMNS = {"boot": "INTEGER", "seq": "INTEGER", "created": "REAL"}
_RECEIPTS = "receipts"

NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK: accepted, but no one will receive it
NO_SUBSCRIBER_RETRY_S = 5.0  # the outbox pauses this long after one; doubles up to a minute
NO_SUBSCRIBER_CAP_S = 60.0
RETRY_CAP_S = 3600.0  # longest wait for a receipt before a row is sent again


@dataclass(frozen=True)
class OutboxRow:
    """One message waiting to be safe; `id` orders rows oldest first. `boot` and `seq` are its
    position (None in rows written before receipts existed)."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    boot: int | None = None
    seq: int | None = None


class Outbox:
    """A bounded, durable FIFO of messages to publish."""

    def __init__(
        self,
        path: str | Path,
        max_rows: int,
        *,
        durable: bool = True,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"outbox max_rows must be at least 1, not {max_rows}")
        self.path = Path(path)
        self.max_rows = max_rows
        self.dropped = 0  # rows dropped from a full outbox since start
        self._dropped_told = 0  # of which the server has been told (take_dropped)
        self._wall = wall
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL survives a power cut (a tablet whose battery dies); NORMAL only a process
        # crash, which is enough for the simulator and spares a fsync per message.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        with self._db:
            for name, kind in _COLUMNS.items():
                if name not in have:  # an outbox written by an agent from before receipts
                    self._db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {kind}")
            self._db.execute("CREATE INDEX IF NOT EXISTS outbox_position ON outbox (boot, seq)")
        self._receipts = (
            self._db.execute("SELECT 1 FROM meta WHERE key = ?", (_RECEIPTS,)).fetchone()
            is not None
        )

    # --- whether the server confirms what it has committed

    @property
    def receipts(self) -> bool:
        """Whether the server has ever sent a receipt: rows then wait for one (persisted)."""
        return self._receipts

    def server_sends_receipts(self) -> None:
        if not self._receipts:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (_RECEIPTS,)
                )
            self._receipts = True
            log.info("%s: the server confirms reports: each is kept until confirmed", self.path)

    # --- rows

    def add(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        position: tuple[int, int] | None = None,
    ) -> int:
        """Append a message and return its row id, dropping the oldest rows beyond the bound."""
        boot, seq = position if position is not None else (None, None)
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, boot, seq, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), boot, seq, self._wall()),
            )
            row_id = cursor.lastrowid
            assert row_id is not None
            excess = self._count() - self.max_rows
            if excess > 0:
                self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                    (excess,),
                )
        if excess > 0:
            self.dropped += excess
            log.warning(
                "outbox %s full (%d rows): dropped the %d oldest (%d dropped since start)",
                self.path,
                self.max_rows,
                excess,
                self.dropped,
            )
        return row_id

    def pending(self, limit: int, exclude: Collection[int] = ()) -> list[OutboxRow]:
        """The oldest `limit` rows whose ids are not in `exclude`, oldest first."""
        rows: list[OutboxRow] = []
        cursor = self._db.execute(
            "SELECT id, topic, payload, qos, retain, boot, seq FROM outbox ORDER BY id"
        )
        for row_id, topic, payload, qos, retain, boot, seq in cursor:
            if len(rows) >= limit:
                break
            if row_id not in exclude:
                rows.append(OutboxRow(row_id, topic, bytes(payload), qos, bool(retain), boot, seq))
        cursor.close()
        return rows

    def remove(self, row_id: int) -> None:
        """Forget a row that is safe (no error if it was dropped meanwhile)."""
        with self._db:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def confirm(self, ranges: Iterable[tuple[int, int, int]]) -> set[int]:
        """Forget the rows whose positions a receipt confirms: `(boot, first, last)` ranges,
        inclusive. Returns the ids of the rows deleted."""
        gone: set[int] = set()
        with self._db:
            for boot, first, last in ranges:
                gone.update(
                    row_id
                    for (row_id,) in self._db.execute(
                        "DELETE FROM outbox WHERE boot = ? AND seq BETWEEN ? AND ? RETURNING id",
                        (boot, first, last),
                    )
                )
        return gone

    def take_dropped(self) -> int:
        """Rows dropped since the last call (for the next status report)."""
        new, self._dropped_told = self.dropped - self._dropped_told, self.dropped
        return new

    def oldest_age_s(self) -> float:
        """Seconds the oldest row has waited (0 when empty; rows from before receipts, which
        have no time, are not counted)."""
        (oldest,) = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()
        return 0.0 if oldest is None else max(0.0, self._wall() - float(oldest))

    def __len__(self) -> int:
        return self._count()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)


@dataclass
class _Waiting:
    """A row the broker accepted, waiting for the server's receipt (or a retry)."""

    due: float  # monotonic time at which it is sent again
    attempts: int  # sends so far beyond the first


class InFlight:
    """Which outbox rows the MQTT client holds, and which wait for the server's receipt.

    The client (paho) resends what it holds after a reconnect by itself, so a row is handed
    over once and stays *held* until its PUBACK, across reconnects; at most `window` rows are
    held at a time, so a long outbox drains without flooding the client's queue. After the
    PUBACK a row *waits* for the server's receipt (when the server sends receipts); a waiting
    row is handed over again after a reconnect, or when it has waited `receipt_timeout_s`
    (doubling with each attempt), so a report the broker forgot is sent again.
    """

    def __init__(
        self,
        outbox: Outbox,
        window: int,
        *,
        receipt_timeout_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.window = window
        self.receipt_timeout_s = receipt_timeout_s
        self._clock = clock
        self._rows: dict[int, int] = {}  # message id -> row id
        self._waiting: dict[int, _Waiting] = {}  # row id -> when to send it again
        self._legacy: set[int] = set()  # held rows without a position (written before receipts)
        # After "no matching subscribers" the server's ingest is not there: the outbox pauses
        # until `_hold_until`, then tries again (at most a window of rows), pausing twice as
        # long each time in a row, up to a minute; any accepted report ends the pause.
        self._hold_until = -math.inf
        self._no_subscriber_streak = 0
        self.resent = 0  # rows handed over again since the last `take_resent`

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def waiting(self) -> int:
        """Rows the broker accepted that wait for the server's receipt."""
        return len(self._waiting)

    def fill(self, publish: Callable[[OutboxRow], int | None]) -> None:
        """Hand over the oldest rows neither held nor waiting (unless their retry is due);
        `publish` returns a message id or None."""
        room = self.window - len(self._rows)
        now = self._clock()
        if room <= 0 or now < self._hold_until:
            return
        exclude = set(self._rows.values())
        exclude.update(row_id for row_id, w in self._waiting.items() if w.due > now)
        for row in self.outbox.pending(room, exclude=exclude):
            mid = publish(row)
            if mid is None:
                return
            if row.id in self._waiting:
                self.resent += 1
            if row.boot is None:
                self._legacy.add(row.id)
            self._rows[mid] = row.id

    def acked(self, mid: int, reason: int = 0) -> bool:
        """The broker answered message `mid` with PUBACK `reason` (0: success). False if it
        was no row of ours."""
        row_id = self._rows.pop(mid, None)
        if row_id is None:
            return False
        before = self._waiting.pop(row_id, None)
        positioned = row_id not in self._legacy
        self._legacy.discard(row_id)
        attempts = 0 if before is None else before.attempts + 1
        if reason == NO_MATCHING_SUBSCRIBERS:
            # Accepted and dropped: the server's session is not there (yet). Nobody has it.
            now = self._clock()
            if now >= self._hold_until:
                self._no_subscriber_streak += 1
                streak = min(self._no_subscriber_streak - 1, 20)
                self._hold_until = now + min(NO_SUBSCRIBER_RETRY_S * 2**streak, NO_SUBSCRIBER_CAP_S)
            self._waiting[row_id] = _Waiting(self._hold_until, attempts - 1 if attempts else 0)
            return True
        if reason < 0x80:
            self._no_subscriber_streak = 0
            self._hold_until = -math.inf
        if reason >= 0x80:
            # Refused (not authorised, too big, …): it would be refused again, and a row that
            # never leaves would block the outbox behind it.
            self.outbox.remove(row_id)
        elif self.outbox.receipts and positioned:
            self._wait(row_id, self.receipt_timeout_s, attempts)
        else:
            self.outbox.remove(row_id)
        return True

    def confirmed(self, ranges: Iterable[tuple[int, int, int]]) -> int:
        """A receipt: forget the rows it confirms. Returns how many there were."""
        gone = self.outbox.confirm(ranges)
        for row_id in gone:
            self._waiting.pop(row_id, None)
        if gone & set(self._rows.values()):
            # Confirmed while a resend is on its way: its PUBACK then concerns no row.
            self._rows = {mid: r for mid, r in self._rows.items() if r not in gone}
        return len(gone)

    def reconnected(self) -> None:
        """A new connection: what waited for a receipt may have died with the broker's memory,
        so every waiting row is sent again now (duplicates cost the server nothing)."""
        now = self._clock()
        for waiting in self._waiting.values():
            waiting.due = min(waiting.due, now)

    def next_due(self) -> float:
        """When rows are next to be sent again (inf: none wait): a waiting row's retry, but
        not before a pause after "no matching subscribers" ends (and then at its end)."""
        if self._clock() < self._hold_until:
            return self._hold_until
        return min((w.due for w in self._waiting.values()), default=math.inf)

    @property
    def paused(self) -> bool:
        """Whether the outbox waits after "no matching subscribers"."""
        return self._clock() < self._hold_until

    def take_resent(self) -> int:
        """How many rows were sent again since the last call (for the next status report)."""
        resent, self.resent = self.resent, 0
        return resent

    def _wait(self, row_id: int, base_s: float, attempts: int) -> None:
        delay = min(base_s * 2 ** min(attempts, 20), max(base_s, RETRY_CAP_S))
        self._waiting[row_id] = _Waiting(self._clock() + delay, attempts)
