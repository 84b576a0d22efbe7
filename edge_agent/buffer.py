"""The durable edge buffer: readings, alerts and status in (SQLite WAL), sealed envelope batches out.

Rows are stored per lane in their wire row form (gateway.contract.encode_reading / encode_alert / status
JSON), so sealing an envelope is byte concatenation. `next_batches` first returns sealed-but-unacked
batches (same seq, same bytes, also after a crash), then seals new ones in lane priority (alerts, status,
telemetry), one lane per batch, assigning the next seq in the sealing transaction. `ack(seq)` deletes a
sealed batch (its rows were moved into it when it was sealed).

Size bound: the buffer counts logical bytes (each row's wire bytes plus ROW_OVERHEAD; a sealed batch is
charged what its rows were, so sealing never changes the count; envelope headers are not counted),
tracked incrementally and persisted with every transaction. A put that would exceed
`max_bytes` evicts oldest first, never a lane more important than the one being put:
  telemetry put: unsealed telemetry, then the oldest rows of the put itself;
  status put:    unsealed telemetry, unsealed status, then the put itself;
  alerts put:    unsealed telemetry, unsealed status, sealed telemetry/status batches (in flight; their
                 seq becomes a gap upstream and a late ack is ignored), unsealed alerts, the put itself.
Sealed alert batches are never evicted. Every evicted item is counted by lane: lifetime totals in
`stats()`, and pending counts that ride in the `dropped` field of the next newly sealed envelope (reset
in that same transaction). Eviction reads only the rows it deletes (O(dropped)).
Superseded heartbeats (beyond STATUS_KEEP unsealed status rows) are coalesced, not counted as dropped.

Items the wire would refuse (gateway.contract validation, rows over MAX_ROW_BYTES, alerts of another
gateway, status that is not JSON) are not stored: a put skips them, stores the rest, and counts them in
`stats().rejected` by lane; a put never raises for bad items.

One process owns a buffer file (SQLite exclusive locking mode); a second opener gets BufferLockedError.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import orjson

from gateway.alerts import AlertEvent
from gateway.contract import (
    LANE_PRIORITY,
    MAX_ENVELOPE_BYTES,
    MAX_ROW_BYTES,
    ContractError,
    Lane,
    alert_object,
    assemble_envelope,
    decode_alert,
    encode_alert,
    encode_reading,
)
from gateway.readings import Reading
from gateway.topics import validate_gateway

# Group commit for the buffer's writers (the agent's intake, the uplink's ack-and-seal): at most one
# transaction per this long each, what arrives meanwhile joins the next. A commit with fsync costs ~150 µs
# of CPU here, so one per message or PUBACK would cost more than the rest of the path.
GROUP_COMMIT_S: Final = 0.005

_T = TypeVar("_T", Reading, AlertEvent)
# Estimated per-row storage cost beyond the body (rowid, ts, record header, b-tree cell).
ROW_OVERHEAD: Final = 16
# Unsealed heartbeats kept; older ones are superseded by newer ones.
STATUS_KEEP: Final = 3
# Eviction order per incoming lane (see the module docstring); a lane never evicts a more important one.
_VICTIMS: Final[dict[Lane, tuple[Lane | str, ...]]] = {
    Lane.TELEMETRY: (Lane.TELEMETRY, "incoming"),
    Lane.STATUS: (Lane.TELEMETRY, Lane.STATUS, "incoming"),
    Lane.ALERTS: (Lane.TELEMETRY, Lane.STATUS, "sealed", Lane.ALERTS, "incoming"),
}
_TABLE: Final[dict[Lane, str]] = {lane: f"rows_{lane.value}" for lane in Lane}


class FsyncPolicy(StrEnum):
    """When SQLite fsyncs: every commit (FULL), at WAL checkpoints only (NORMAL), or never (OFF).

    All three survive a process crash or SIGKILL (committed WAL frames are in the OS page cache).
    NORMAL may lose the last commits on power loss; OFF may also corrupt the file on power loss.
    """

    FULL = "full"
    NORMAL = "normal"
    OFF = "off"


# FULL: a field gateway loses power more often than its process crashes, and FULL's measured cost (one
# fdatasync per put; bench/bench_buffer.py: ~75k readings/s at 100 per put, ~120k at 1000, vs ~130-140k
# for NORMAL on a loaded 2-core VM) stays above the 50k/s target. Choose NORMAL where fsync is very slow.
DEFAULT_FSYNC: Final = FsyncPolicy.FULL


class DurableBufferError(Exception):
    """The durable buffer cannot do what was asked."""


class BufferLockedError(DurableBufferError):
    """Another process holds the buffer file."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One sealed envelope, ready to publish; resent with the same seq and bytes until acked."""

    seq: int
    lane: Lane
    payload: bytes
    items: int
    nbytes: int
    oldest_ts_ms: int | None


@dataclass(frozen=True, slots=True)
class BufferStats:
    """Depth, drops and age of the buffer (items include sealed, unacked batches)."""

    depth_items: int
    depth_bytes: int
    by_lane: dict[str, int]
    dropped: dict[str, int]
    oldest_ts_ms: int | None
    sealed_unacked: int
    max_bytes: int
    dropped_pending: dict[str, int]
    ingress_bytes: int
    rejected: dict[str, int]


@dataclass(slots=True)
class _Sealed:
    lane: Lane
    items: int
    nbytes: int
    oldest_ts_ms: int | None


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rows_alerts (id INTEGER PRIMARY KEY, ts_ms INTEGER, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rows_status (id INTEGER PRIMARY KEY, ts_ms INTEGER, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rows_telemetry (id INTEGER PRIMARY KEY, ts_ms INTEGER, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY, lane TEXT NOT NULL, payload BLOB NOT NULL,
    items INTEGER NOT NULL, charged INTEGER NOT NULL, oldest_ts_ms INTEGER);
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), doc BLOB NOT NULL);
"""


def _lane_counts(counts: dict[Lane, int]) -> dict[str, int]:
    return {lane.value: n for lane, n in counts.items() if n}


class DurableBuffer:
    """A bounded, crash-safe, per-gateway queue of wire rows and sealed batches in one SQLite file.

    Not for parallel use: calls are serialized by a lock, so a thread pool may call it, one at a time.
    """

    def __init__(self, path: Path, *, gateway: str, max_bytes: int, fsync: FsyncPolicy = DEFAULT_FSYNC) -> None:
        self.gateway = validate_gateway(gateway)
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.fsync = FsyncPolicy(fsync)
        self._lock = threading.Lock()
        self._ingress = 0
        self._next_seq = 1
        path.parent.mkdir(parents=True, exist_ok=True)
        self._items: dict[Lane, int] = {}
        self._bytes: dict[Lane, int] = {}
        self._dropped_pending: dict[Lane, int] = {}
        self._dropped_total: dict[Lane, int] = {}
        self._rejected: dict[Lane, int] = {}
        self._sealed: dict[int, _Sealed] = {}
        self._opened = False
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    def _open(self) -> None:
        db = self._db
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA busy_timeout=0")
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            raise BufferLockedError(f"buffer file is in use by another process: {exc}") from exc
        if mode != "wal":
            raise DurableBufferError(f"cannot enable WAL journal mode (got {mode!r})")
        db.execute(f"PRAGMA synchronous={self.fsync.value.upper()}")
        db.execute("PRAGMA cache_size=-8192")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute(f"PRAGMA journal_size_limit={32 * 1024 * 1024}")
        with self._txn():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT doc FROM state WHERE id = 1").fetchone()
            if row is None:
                self._reset_state()
                self._save_state()
            else:
                self._load_state(orjson.loads(row[0]))
        self._load_sealed()
        self._opened = True

    def _reset_state(self) -> None:
        self._next_seq = 1
        self._items = dict.fromkeys(Lane, 0)
        self._bytes = dict.fromkeys(Lane, 0)
        self._dropped_pending = dict.fromkeys(Lane, 0)
        self._dropped_total = dict.fromkeys(Lane, 0)
        self._rejected = dict.fromkeys(Lane, 0)

    def _load_state(self, doc: dict[str, Any]) -> None:
        if doc["gateway"] != self.gateway:
            raise DurableBufferError(f"buffer belongs to gateway {doc['gateway']!r}, not {self.gateway!r}")
        self._next_seq = int(doc["next_seq"])
        self._items = {lane: int(doc["items"].get(lane.value, 0)) for lane in Lane}
        self._bytes = {lane: int(doc["bytes"].get(lane.value, 0)) for lane in Lane}
        self._dropped_pending = {lane: int(doc["dropped_pending"].get(lane.value, 0)) for lane in Lane}
        self._dropped_total = {lane: int(doc["dropped_total"].get(lane.value, 0)) for lane in Lane}
        self._rejected = {lane: int(doc["rejected"].get(lane.value, 0)) for lane in Lane}

    def _load_sealed(self) -> None:
        self._sealed = {}
        rows = self._db.execute("SELECT seq, lane, items, charged, oldest_ts_ms FROM batches ORDER BY seq")
        for seq, lane, items, charged, oldest in rows:
            self._sealed[seq] = _Sealed(Lane(lane), items, charged, oldest)
        if self._sealed:
            self._next_seq = max(self._next_seq, max(self._sealed) + 1)

    def _reload(self) -> None:
        row = self._db.execute("SELECT doc FROM state WHERE id = 1").fetchone()
        self._load_state(orjson.loads(row[0]))
        self._load_sealed()

    def _save_state(self) -> None:
        doc = {
            "gateway": self.gateway,
            "next_seq": self._next_seq,
            "items": _lane_counts(self._items),
            "bytes": _lane_counts(self._bytes),
            "dropped_pending": _lane_counts(self._dropped_pending),
            "dropped_total": _lane_counts(self._dropped_total),
            "rejected": _lane_counts(self._rejected),
        }
        self._db.execute("INSERT OR REPLACE INTO state (id, doc) VALUES (1, ?)", (orjson.dumps(doc),))

    @contextmanager
    def _txn(self) -> Iterator[None]:
        # In-memory counters change with the SQL; a failed transaction reloads them from the file.
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise BufferLockedError(f"buffer file is in use by another process: {exc}") from exc
            raise
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            if self._opened:
                self._reload()
            raise

    def _total_bytes(self) -> int:
        return sum(self._bytes.values()) + sum(s.nbytes for s in self._sealed.values())

    def put_readings(self, readings: Sequence[Reading]) -> None:
        """Store readings durably (per the fsync policy) in one transaction before returning."""
        self._put(Lane.TELEMETRY, *self._encode(readings, encode_reading))

    def put_alerts(self, alerts: Sequence[AlertEvent]) -> None:
        """Store alert events durably in one transaction before returning."""
        mine = [a for a in alerts if a.gateway == self.gateway]
        rows, rejected = self._encode(mine, encode_alert)
        self._put(Lane.ALERTS, rows, rejected + len(alerts) - len(mine))

    def put_status(self, status: dict[str, Any]) -> None:
        """Store one status (heartbeat) object; only the latest STATUS_KEEP unsealed ones are kept."""
        try:
            body = orjson.dumps(status)
        except orjson.JSONEncodeError:
            self._put(Lane.STATUS, [], 1)
            return
        ts = status.get("ts_ms")
        self._put(Lane.STATUS, *self._sized([(ts if type(ts) is int else None, body)]))

    @staticmethod
    def _encode(items: Sequence[_T], encode: Callable[[_T], bytes]) -> tuple[list[tuple[int | None, bytes]], int]:
        rows: list[tuple[int | None, bytes]] = []
        rejected = 0
        for item in items:
            try:
                rows.append((item.ts_ms, encode(item)))
            except ContractError:
                rejected += 1
        kept, oversize = DurableBuffer._sized(rows)
        return kept, rejected + oversize

    @staticmethod
    def _sized(rows: list[tuple[int | None, bytes]]) -> tuple[list[tuple[int | None, bytes]], int]:
        kept = [row for row in rows if len(row[1]) <= MAX_ROW_BYTES]
        return kept, len(rows) - len(kept)

    def _put(self, lane: Lane, rows: list[tuple[int | None, bytes]], rejected: int = 0) -> None:
        if not rows and not rejected:
            return
        with self._lock, self._txn():
            self._rejected[lane] += rejected
            if lane is Lane.STATUS and rows:
                rows = rows[-STATUS_KEEP:]
                surplus = self._items[lane] + len(rows) - STATUS_KEEP
                if surplus > 0:
                    self._delete_head(lane, count=surplus)
            sizes = [len(body) + ROW_OVERHEAD for _, body in rows]
            cut = self._make_room(lane, sizes)
            if cut:
                rows, sizes = rows[cut:], sizes[cut:]
                self._count_dropped(lane, cut)
            if rows:
                self._db.executemany(f"INSERT INTO {_TABLE[lane]} (ts_ms, body) VALUES (?, ?)", rows)
                self._items[lane] += len(rows)
                added = sum(sizes)
                self._bytes[lane] += added
                self._ingress += added
            self._save_state()

    def _count_dropped(self, lane: Lane, n: int) -> None:
        self._dropped_pending[lane] += n
        self._dropped_total[lane] += n

    def _delete_head(self, lane: Lane, *, count: int | None = None, need: int | None = None) -> int:
        """Delete the oldest unsealed rows of `lane`: `count` of them, or enough to free `need` bytes."""
        cur = self._db.execute(f"SELECT id, length(body) FROM {_TABLE[lane]} ORDER BY id")
        freed = n = 0
        last_id = None
        while (count is None or n < count) and (need is None or freed < need):
            chunk = cur.fetchmany(min(256, count - n) if count is not None else 256)
            if not chunk:
                break
            for row_id, size in chunk:
                last_id = row_id
                freed += size + ROW_OVERHEAD
                n += 1
                if need is not None and freed >= need:
                    break
        cur.close()
        if last_id is not None:
            self._db.execute(f"DELETE FROM {_TABLE[lane]} WHERE id <= ?", (last_id,))
            self._items[lane] -= n
            self._bytes[lane] -= freed
        return freed

    def _make_room(self, lane: Lane, sizes: list[int]) -> int:
        """Evict by the policy in the module docstring; return how many incoming rows to drop."""
        need = self._total_bytes() + sum(sizes) - self.max_bytes
        cut = 0
        for victim in _VICTIMS[lane]:
            if need <= 0:
                break
            if victim == "incoming":
                while need > 0 and cut < len(sizes):
                    need -= sizes[cut]
                    cut += 1
            elif victim == "sealed":
                for seq, batch in list(self._sealed.items()):
                    if need <= 0:
                        break
                    if batch.lane is not Lane.ALERTS:
                        self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
                        del self._sealed[seq]
                        need -= batch.nbytes
                        self._count_dropped(batch.lane, batch.items)
            elif isinstance(victim, Lane) and self._items[victim]:
                before = self._items[victim]
                need -= self._delete_head(victim, need=need)
                self._count_dropped(victim, before - self._items[victim])
        return cut

    def next_batches(self, max_batches: int, *, max_items: int, max_bytes: int, now_ms: int) -> list[Batch]:
        """Return unacked sealed batches (oldest first), then seal new ones in lane priority."""
        with self._lock:
            out = [
                Batch(seq, Lane(lane), payload, items, len(payload), oldest)
                for seq, lane, payload, items, oldest in self._db.execute(
                    "SELECT seq, lane, payload, items, oldest_ts_ms FROM batches ORDER BY seq LIMIT ?",
                    (max_batches,),
                )
            ]
            pending_drops = any(self._dropped_pending.values())
            if len(out) >= max_batches or not (any(self._items.values()) or pending_drops):
                return out
            with self._txn():
                out += self._seal_up_to(max_batches - len(out), max_items, max_bytes, now_ms)
                self._save_state()
            return out

    def ack_and_seal(
        self, acked: Sequence[int], max_batches: int, *, max_items: int, max_bytes: int, now_ms: int, force: bool
    ) -> tuple[list[Batch], int]:
        """Forget PUBACKed batches and seal up to `max_batches` new ones, in one transaction (one fsync).

        Seals only when a full batch (max_items or max_bytes) waits unsealed, or when `force` (pending data
        has aged, or the caller expects more). Returns only the newly sealed batches, never the unacked ones
        a caller already holds, and how many items are left unsealed.
        """
        with self._lock:
            known = [seq for seq in dict.fromkeys(acked) if seq in self._sealed]
            waiting = sum(self._items.values())
            full = waiting >= max_items or sum(self._bytes.values()) >= max_bytes
            seal = max_batches > 0 and (
                (waiting > 0 and (full or force)) or (force and any(self._dropped_pending.values()))
            )
            if not known and not seal:
                return [], waiting
            out: list[Batch] = []
            with self._txn():
                if known:
                    self._db.executemany("DELETE FROM batches WHERE seq = ?", [(seq,) for seq in known])
                    for seq in known:
                        del self._sealed[seq]
                if seal:
                    out = self._seal_up_to(max_batches, max_items, max_bytes, now_ms)
                    self._save_state()
            return out, sum(self._items.values())

    def _seal_up_to(self, max_batches: int, max_items: int, max_bytes: int, now_ms: int) -> list[Batch]:
        """Seal up to `max_batches` new batches in lane priority, inside the caller's transaction."""
        budget = min(max_bytes, MAX_ENVELOPE_BYTES)
        out: list[Batch] = []
        while len(out) < max_batches:
            lane = next((ln for ln in LANE_PRIORITY if self._items[ln]), None)
            if lane is None and not any(self._dropped_pending.values()):
                break
            if lane is Lane.TELEMETRY:
                sealed = self._seal_telemetry(max_batches - len(out), max(1, max_items), budget, now_ms)
                if not sealed:
                    break
                out += sealed
                continue
            # With nothing left to send, an empty telemetry envelope still carries drop counts.
            out.append(self._seal(lane or Lane.TELEMETRY, max(1, max_items), budget, now_ms))
            if lane is None:
                break
        return out

    def _seal_telemetry(self, max_batches: int, max_items: int, budget: int, now_ms: int) -> list[Batch]:
        """Seal up to `max_batches` telemetry batches from one read of the rows (as `_seal` would, one by one)."""
        rows: list[tuple[int, int | None, bytes]] = self._db.execute(
            "SELECT id, ts_ms, body FROM rows_telemetry ORDER BY id LIMIT ?", (max_batches * max_items,)
        ).fetchall()
        out: list[Batch] = []
        inserts: list[tuple[int, str, bytes, int, int, int | None]] = []
        lane = Lane.TELEMETRY
        pos = 0
        while pos < len(rows) and len(out) < max_batches:
            seq = self._next_seq
            dropped = _lane_counts(self._dropped_pending)
            # The first row is always taken; the envelope's own size matters only when a second one may fit.
            end, limit = pos + 1, min(pos + max_items, len(rows))
            if limit > end:
                header = assemble_envelope(gateway=self.gateway, seq=seq, lane=lane, sent_ms=now_ms, dropped=dropped)
                used = len(header) + len(rows[pos][2]) + 1
                while end < limit and used + len(rows[end][2]) + 1 <= budget:
                    used += len(rows[end][2]) + 1
                    end += 1
            taken = rows[pos:end]
            pos = end
            payload = assemble_envelope(
                gateway=self.gateway,
                seq=seq,
                lane=lane,
                sent_ms=now_ms,
                dropped=dropped,
                reading_rows=[r[2] for r in taken],
            )
            record, batch = self._account_sealed(seq, lane, payload, taken)
            inserts.append(record)
            out.append(batch)
        if pos:
            self._db.execute("DELETE FROM rows_telemetry WHERE id <= ?", (rows[pos - 1][0],))
            self._db.executemany(
                "INSERT INTO batches (seq, lane, payload, items, charged, oldest_ts_ms) VALUES (?, ?, ?, ?, ?, ?)",
                inserts,
            )
        return out

    def _seal(self, lane: Lane, max_items: int, budget: int, now_ms: int) -> Batch:
        seq = self._next_seq
        dropped = _lane_counts(self._dropped_pending)
        limit = 1 if lane is Lane.STATUS else max_items
        rows: list[tuple[int, int | None, bytes]] = self._db.execute(
            f"SELECT id, ts_ms, body FROM {_TABLE[lane]} ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        used = len(assemble_envelope(gateway=self.gateway, seq=seq, lane=lane, sent_ms=now_ms, dropped=dropped))
        taken: list[tuple[int, int | None, bytes]] = []
        alerts: list[AlertEvent] = []
        for row in rows:
            if lane is Lane.ALERTS:
                alert = decode_alert(row[2])
                cost = len(orjson.dumps(alert_object(alert))) + 1
            else:
                cost = len(row[2]) + 1
            if taken and used + cost > budget:
                break
            used += cost
            taken.append(row)
            if lane is Lane.ALERTS:
                alerts.append(alert)
        payload = assemble_envelope(
            gateway=self.gateway,
            seq=seq,
            lane=lane,
            sent_ms=now_ms,
            dropped=dropped,
            status=orjson.Fragment(taken[0][2]) if lane is Lane.STATUS and taken else None,
            alerts=alerts,
            reading_rows=[r[2] for r in taken] if lane is Lane.TELEMETRY else (),
        )
        if taken:
            self._db.execute(f"DELETE FROM {_TABLE[lane]} WHERE id <= ?", (taken[-1][0],))
        record, batch = self._account_sealed(seq, lane, payload, taken)
        self._db.execute(
            "INSERT INTO batches (seq, lane, payload, items, charged, oldest_ts_ms) VALUES (?, ?, ?, ?, ?, ?)", record
        )
        return batch

    def _account_sealed(
        self, seq: int, lane: Lane, payload: bytes, taken: list[tuple[int, int | None, bytes]]
    ) -> tuple[tuple[int, str, bytes, int, int, int | None], Batch]:
        """Move `taken` rows from the lane's counts to a sealed batch; return its `batches` row and the Batch."""
        stamps = [r[1] for r in taken if r[1] is not None]
        oldest = min(stamps) if stamps else None
        charged = sum(len(r[2]) + ROW_OVERHEAD for r in taken)
        self._items[lane] -= len(taken)
        self._bytes[lane] -= charged
        self._sealed[seq] = _Sealed(lane, len(taken), charged, oldest)
        self._next_seq = seq + 1
        if any(self._dropped_pending.values()):  # the envelope just sealed carries them
            self._dropped_pending = dict.fromkeys(Lane, 0)
        return (seq, lane.value, payload, len(taken), charged, oldest), Batch(
            seq, lane, payload, len(taken), len(payload), oldest
        )

    def ack(self, seq: int) -> None:
        """Forget a published batch (PUBACK received); unknown or repeated seqs are ignored."""
        with self._lock:
            if seq not in self._sealed:
                return
            self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            del self._sealed[seq]

    def ack_many(self, seqs: Sequence[int]) -> None:
        """Forget several published batches in one transaction (one fsync, not one per batch)."""
        with self._lock:
            known = [seq for seq in dict.fromkeys(seqs) if seq in self._sealed]
            if not known:
                return
            with self._txn():
                self._db.executemany("DELETE FROM batches WHERE seq = ?", [(seq,) for seq in known])
            for seq in known:
                del self._sealed[seq]

    def stats(self) -> BufferStats:
        """Return depth, lifetime drops, oldest event time and unacked batches."""
        with self._lock:
            by_lane = dict(self._items)
            for batch in self._sealed.values():
                by_lane[batch.lane] += batch.items
            stamps = [b.oldest_ts_ms for b in self._sealed.values() if b.oldest_ts_ms is not None]
            for lane in Lane:
                if self._items[lane]:
                    row = self._db.execute(
                        f"SELECT min(ts_ms) FROM (SELECT ts_ms FROM {_TABLE[lane]} ORDER BY id LIMIT 64)"
                    ).fetchone()
                    if row[0] is not None:
                        stamps.append(row[0])
            return BufferStats(
                depth_items=sum(by_lane.values()),
                depth_bytes=self._total_bytes(),
                by_lane={lane.value: n for lane, n in by_lane.items()},
                dropped={lane.value: n for lane, n in self._dropped_total.items()},
                oldest_ts_ms=min(stamps) if stamps else None,
                sealed_unacked=len(self._sealed),
                max_bytes=self.max_bytes,
                dropped_pending={lane.value: n for lane, n in self._dropped_pending.items()},
                ingress_bytes=self._ingress,
                rejected={lane.value: n for lane, n in self._rejected.items()},
            )

    def pending_age_ms(self, now_ms: int) -> int | None:
        """Return how old (event time) the oldest buffered item is, or None when empty."""
        oldest = self.stats().oldest_ts_ms
        return None if oldest is None else max(0, now_ms - oldest)

    def autonomy_hours(self, ingress_bytes_per_s: float) -> float:
        """Return hours until the buffer is full at `ingress_bytes_per_s` (inf when nothing comes in)."""
        if ingress_bytes_per_s <= 0:
            return math.inf
        with self._lock:
            free = max(0, self.max_bytes - self._total_bytes())
        return free / ingress_bytes_per_s / 3600.0

    def close(self) -> None:
        """Close the file; the buffer cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> DurableBuffer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
