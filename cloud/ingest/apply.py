"""One write batch: raw messages in; readings stored, alerts handed, seqs recorded; an Outcome out.

Messages are first decoded (`decode_messages`: topic and contract, readings as columns) in decoder
processes or in the writer thread. Then, in the ingest writer thread (never in parallel), in this order:

0. gate every verdict on the gateway directory (cloud.ingest.admit.gate); rejections and liveness
   verdicts go back to the worker in the Outcome;
1. ask the ledger which (gateway, seq) are new; drop the rest and repeats inside the batch;
2. write the new envelopes' readings to the series store in one call (one transaction);
3. hand the new alerts envelopes to the AlertSink, all in one call;
4. record the new seqs in the ledger (one transaction);

and only then does the worker acknowledge the batch's messages to the broker.

Why this is exactly once although the store and the ledger commit separately (SqliteSeriesStore owns
its connection and takes no outside transaction): a crash before step 4 leaves the messages
unacknowledged, so the broker redelivers them (persistent session) and steps 2-3 run again. Series
writes are idempotent on (device, quantity, ts) with the first value kept, and a resend carries the same
bytes, so re-writing changes nothing; the AlertSink contract requires idempotence on (fingerprint,
state, ts_ms) for the same reason. A crash after step 4 but before the acks redelivers messages that
step 1 then drops. Recording before applying would instead lose a batch on a crash, so never do that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from cloud.ingest.admit import Batch, Heartbeat, Message, Offline, Rejected, Verdict, admit, gate
from cloud.ingest.ledger import Ledger
from cloud.ingest.ports import AlertSink, GatewayDirectory
from cloud.store import SeriesStore
from cloud.store.columns import ReadingColumns, columns_of_rows, concat
from gateway.contract import Envelope
from gateway.readings import Quality, Reading, Reason

# An envelope's readings as columns, with each device's newest stamp (for liveness).
Decoded = tuple[ReadingColumns, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch did: the envelopes applied (first time seen), duplicates, store counts, devices seen."""

    envelopes: list[Envelope]
    duplicates: int
    readings: int
    readings_new: int
    # device -> newest event time among the applied readings, for liveness.
    seen: dict[str, int]


def fresh_envelopes(envelopes: Sequence[Envelope], ledger: Ledger) -> list[Envelope]:
    """Return the envelopes whose (gateway, seq) the ledger has not applied, each pair once, in order."""
    seqs: dict[str, set[int]] = {}
    for env in envelopes:
        seqs.setdefault(env.gateway, set()).add(env.seq)
    new = {gateway: ledger.unapplied(gateway, gw_seqs) for gateway, gw_seqs in seqs.items()}
    fresh = []
    for env in envelopes:
        pending = new[env.gateway]
        if env.seq in pending:
            pending.discard(env.seq)  # a repeat later in the same batch is a duplicate
            fresh.append(env)
    return fresh


def newest_per_device(readings: Sequence[Reading]) -> dict[str, int]:
    """Return each device's newest event time."""
    seen: dict[str, int] = {}
    for r in readings:
        if r.ts_ms > seen.get(r.device, -1):
            seen[r.device] = r.ts_ms
    return seen


def apply_batch(
    envelopes: Sequence[Envelope],
    store: SeriesStore,
    alerts: AlertSink,
    ledger: Ledger,
    columns: Sequence[Decoded | None] | None = None,
) -> Applied:
    """Apply the new envelopes of a batch once (see the module docstring for the order and why).

    `columns`, parallel to `envelopes`, gives an envelope's readings already as columns with each device's
    newest stamp (None: its `readings`); only a store that `takes_columns` is handed columns.
    """
    fresh = fresh_envelopes(envelopes, ledger)
    decoded = dict(zip(map(id, envelopes), columns, strict=True)) if columns is not None else {}
    parts: list[ReadingColumns] = []
    newests: list[dict[str, int]] = []
    readings: list[Reading] = []
    for env in fresh:
        got = decoded.get(id(env))
        if got is None:
            readings.extend(env.readings)
        else:
            parts.append(got[0])
            newests.append(got[1])
    seen: dict[str, int] = {}
    for newest in [*newests, newest_per_device(readings)]:
        for device, ts in newest.items():
            if ts > seen.get(device, -1):
                seen[device] = ts
    total = len(readings) + sum(len(c) + c.too_new for c in parts)
    new = _write(store, parts, readings) if total else 0
    handed = [(env.gateway, env.alerts) for env in fresh if env.alerts]
    if handed:
        alerts.handle_batch(handed)  # one call (one incident transaction) for the whole batch
    applied: dict[str, list[int]] = {}
    for env in fresh:
        applied.setdefault(env.gateway, []).append(env.seq)
    if applied:
        ledger.record(applied)
    return Applied(fresh, len(envelopes) - len(fresh), total, new, seen)


class ColumnStore(Protocol):
    """A SeriesStore that also writes ReadingColumns; it says so with `takes_columns = True`."""

    def write_columns(self, cols: ReadingColumns) -> int:
        """Store the readings idempotently; return how many were new."""
        ...


def takes_columns(store: SeriesStore) -> bool:
    """Whether ingest may hand `store` ReadingColumns instead of Readings (the fast path)."""
    return getattr(store, "takes_columns", False) is True


def _write(store: SeriesStore, parts: list[ReadingColumns], readings: list[Reading]) -> int:
    """Write columns and Readings together: as columns to a store that takes them, else as Readings."""
    if takes_columns(store):
        if readings:
            parts = [*parts, columns_of_rows(readings)]
        return cast(ColumnStore, store).write_columns(concat(parts))
    for cols in parts:
        readings.extend(
            Reading(d, q, v, u, ts, Quality(ql), None if why is None else Reason(why))
            for d, q, v, u, ts, ql, why in cols.rows()
        )
    return store.write(readings)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A processed batch: what was applied, what was rejected, and liveness verdicts in arrival order."""

    applied: Applied
    rejected: list[Rejected]
    liveness: list[tuple[Heartbeat | Offline, bool]]  # (verdict, retained)


def decode_messages(messages: Sequence[Message], *, max_bytes: int, columns: bool) -> list[Verdict]:
    """Return each message's verdict without the directory check (run in a decoder process or inline)."""
    return [admit(m.topic, m.payload, None, max_bytes=max_bytes, columns=columns) for m in messages]


def apply_verdicts(
    messages: Sequence[Message],
    verdicts: Sequence[Verdict],
    directory: GatewayDirectory,
    store: SeriesStore,
    alerts: AlertSink,
    ledger: Ledger,
) -> Outcome:
    """Gate decoded verdicts on the directory, then apply the admitted envelopes once (steps 0-4)."""
    envelopes: list[Envelope] = []
    columns: list[Decoded | None] = []
    rejected: list[Rejected] = []
    liveness: list[tuple[Heartbeat | Offline, bool]] = []
    for message, decoded in zip(messages, verdicts, strict=True):
        verdict = gate(decoded, directory)
        if isinstance(verdict, Batch):
            envelopes.append(verdict.envelope)
            cols, newest = verdict.columns, verdict.newest
            columns.append(None if cols is None or newest is None else (cols, newest))
        elif isinstance(verdict, Rejected):
            rejected.append(verdict)
        else:
            liveness.append((verdict, message.retained))
    return Outcome(apply_batch(envelopes, store, alerts, ledger, columns), rejected, liveness)


def process_batch(
    messages: Sequence[Message],
    directory: GatewayDirectory,
    store: SeriesStore,
    alerts: AlertSink,
    ledger: Ledger,
    *,
    max_bytes: int,
) -> Outcome:
    """Decode every message in this thread, then gate and apply them (steps 0-4 of the module docstring)."""
    verdicts = decode_messages(messages, max_bytes=max_bytes, columns=takes_columns(store))
    return apply_verdicts(messages, verdicts, directory, store, alerts, ledger)
