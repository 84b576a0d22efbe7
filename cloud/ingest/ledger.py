"""The applied-seq ledger: (gateway, seq) pairs in, "not applied yet" answers out, durable in the SQL layer.

Seq is per gateway across lanes. MQTT orders only within a topic, so a telemetry batch may arrive after a
later alerts batch, and a resend may come at any time; seq also has gaps where the edge buffer dropped a
sealed batch. Per gateway the ledger keeps a watermark W (every seq <= W counts as applied) and the
applied seqs above it. `compact` raises W over every contiguous run, and past a gap once the highest
applied seq is more than `window` above W (so a dropped batch pins at most `window` rows). A batch
arriving more than `window` seqs late counts as already applied: the edge uplink keeps at most its
in-flight window (32 by default) out of order, so the default of 4096 leaves a wide margin.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Final, Protocol

from cloud.db import Database

DEFAULT_WINDOW: Final = 4096
# Buffer seqs start at 1; seq 0 is the heartbeat's and never reaches the ledger.
INITIAL_WATERMARK: Final = 0

MIGRATIONS: Final = (
    """
    CREATE TABLE ingest_watermark (gateway TEXT PRIMARY KEY, watermark BIGINT NOT NULL);
    CREATE TABLE ingest_applied (gateway TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (gateway, seq))
    """,
)


def compact(watermark: int, seqs: Iterable[int], window: int) -> tuple[int, list[int]]:
    """Return the new watermark and the sorted applied seqs left above it."""
    above = sorted({s for s in seqs if s > watermark})
    if above and above[-1] - window > watermark:
        watermark = above[-1] - window
        above = [s for s in above if s > watermark]
    run = 0
    while run < len(above) and above[run] == watermark + run + 1:
        run += 1
    return watermark + run, above[run:]


class Ledger(Protocol):
    """Which (gateway, seq) were applied; called from the ingest writer thread, never in parallel."""

    def unapplied(self, gateway: str, seqs: Collection[int]) -> set[int]:
        """Return the seqs of `gateway` among `seqs` that were not applied yet."""
        ...

    def record(self, applied: Mapping[str, Collection[int]]) -> None:
        """Durably mark the seqs applied, all gateways in one transaction."""
        ...


class MemoryLedger:
    """The ledger in a dict (tests, demos); same semantics as SqlLedger, nothing kept on disk."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self._state: dict[str, tuple[int, list[int]]] = {}

    def unapplied(self, gateway: str, seqs: Collection[int]) -> set[int]:
        """Return the seqs not applied yet."""
        watermark, above = self._state.get(gateway, (INITIAL_WATERMARK, []))
        return {s for s in seqs if s > watermark} - set(above)

    def record(self, applied: Mapping[str, Collection[int]]) -> None:
        """Mark the seqs applied."""
        for gateway, seqs in applied.items():
            watermark, above = self._state.get(gateway, (INITIAL_WATERMARK, []))
            self._state[gateway] = compact(watermark, [*above, *seqs], self.window)

    def watermark(self, gateway: str) -> int:
        """Return the watermark of `gateway`."""
        return self._state.get(gateway, (INITIAL_WATERMARK, []))[0]

    def forget(self, gateway: str) -> None:
        """Drop a gateway's history (its edge buffer was reset, so its seqs start over)."""
        self._state.pop(gateway, None)


class SqlLedger:
    """The ledger in two tables of the cloud database (SQLite or PostgreSQL).

    Workers sharing one database share the ledger: `unapplied` always asks the database, never a cache,
    because a `$share` group hands one gateway's messages to any worker.
    """

    def __init__(self, db: Database, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        self.db = db
        self.window = window
        db.migrate("ingest_ledger", MIGRATIONS)

    def _watermark(self, gateway: str) -> int:
        row = self.db.fetchone("SELECT watermark FROM ingest_watermark WHERE gateway = ?", (gateway,))
        return INITIAL_WATERMARK if row is None else int(row[0])

    def unapplied(self, gateway: str, seqs: Collection[int]) -> set[int]:
        """Return the seqs not applied yet (two indexed reads)."""
        watermark = self._watermark(gateway)
        candidates = {s for s in seqs if s > watermark}
        if not candidates:
            return candidates
        rows = self.db.fetchall(
            "SELECT seq FROM ingest_applied WHERE gateway = ? AND seq >= ? AND seq <= ?",
            (gateway, min(candidates), max(candidates)),
        )
        return candidates - {int(seq) for (seq,) in rows}

    def record(self, applied: Mapping[str, Collection[int]]) -> None:
        """Insert the seqs, raise each touched watermark and drop the rows under it, in one transaction."""
        with self.db.transaction() as db:
            for gateway, seqs in applied.items():
                if not seqs:
                    continue
                watermark = self._watermark(gateway)
                above = [
                    (s,)
                    for (s,) in db.fetchall(
                        "SELECT seq FROM ingest_applied WHERE gateway = ? AND seq > ?", (gateway, watermark)
                    )
                ]
                new_mark, rest = compact(watermark, [*(s for (s,) in above), *seqs], self.window)
                stored = {int(s) for (s,) in above}
                db.executemany(
                    "INSERT INTO ingest_applied (gateway, seq) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [(gateway, s) for s in rest if s not in stored],
                )
                if new_mark != watermark:
                    db.execute(
                        "INSERT INTO ingest_watermark (gateway, watermark) VALUES (?, ?) "
                        "ON CONFLICT (gateway) DO UPDATE SET watermark = excluded.watermark",
                        (gateway, new_mark),
                    )
                    db.execute("DELETE FROM ingest_applied WHERE gateway = ? AND seq <= ?", (gateway, new_mark))

    def watermark(self, gateway: str) -> int:
        """Return the watermark of `gateway`."""
        return self._watermark(gateway)

    def pending_rows(self, gateway: str) -> int:
        """Return how many applied seqs are kept above the watermark (bounded by `window`)."""
        row = self.db.fetchone("SELECT count(*) FROM ingest_applied WHERE gateway = ?", (gateway,))
        return 0 if row is None else int(row[0])

    def forget(self, gateway: str) -> None:
        """Drop a gateway's history (its edge buffer was reset, so its seqs start over)."""
        with self.db.transaction() as db:
            db.execute("DELETE FROM ingest_applied WHERE gateway = ?", (gateway,))
            db.execute("DELETE FROM ingest_watermark WHERE gateway = ?", (gateway,))
