"""One write batch: raw messages in; readings stored, alerts handed, seqs recorded; an Outcome out.

Runs in the ingest writer thread (never in parallel), in this order:

0. admit every message (cloud.ingest.admit: topic, directory, contract); rejections and liveness
   verdicts go back to the worker in the Outcome;
1. ask the ledger which (gateway, seq) are new; drop the rest and repeats inside the batch;
2. write the new envelopes' readings to the series store in one call (one transaction);
3. hand each new alerts envelope to the AlertSink;
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
from typing import Any, Protocol, cast

from cloud.ingest.admit import Batch, Heartbeat, Offline, Rejected, admit
from cloud.ingest.ledger import Ledger
from cloud.ingest.ports import AlertSink, GatewayDirectory
from cloud.store import SeriesStore
from gateway.contract import Envelope
from gateway.readings import Quality, Reading, Reason

# A reading as a Reading or as its validated wire row [device, quantity, value, unit, ts_ms, quality, reason].
Row = Sequence[Any]


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


def newest_per_device(readings: Sequence[Row]) -> dict[str, int]:
    """Return each device's newest event time."""
    seen: dict[str, int] = {}
    get = seen.get
    # Tuple unpacking beats NamedTuple attribute access on this hot loop.
    for device, _, _, _, ts, _, _ in readings:
        if ts > get(device, -1):
            seen[device] = ts
    return seen


def apply_batch(
    envelopes: Sequence[Envelope],
    store: SeriesStore,
    alerts: AlertSink,
    ledger: Ledger,
    rows: Sequence[Sequence[Row] | None] | None = None,
) -> Applied:
    """Apply the new envelopes of a batch once (see the module docstring for the order and why).

    `rows`, parallel to `envelopes`, gives an envelope's readings as validated wire rows (None: its
    `readings`); a store that `takes_rows` gets them without Reading objects built.
    """
    fresh = fresh_envelopes(envelopes, ledger)
    per_env = rows if rows is not None else [None] * len(envelopes)
    rows_of = {id(env): r for env, r in zip(envelopes, per_env, strict=True)}
    batch: list[Row] = []
    for env in fresh:
        env_rows = rows_of[id(env)]
        batch.extend(env.readings if env_rows is None else env_rows)
    new = _write(store, batch) if batch else 0
    for env in fresh:
        if env.alerts:
            alerts.handle(env.gateway, env.alerts)
    applied: dict[str, list[int]] = {}
    for env in fresh:
        applied.setdefault(env.gateway, []).append(env.seq)
    if applied:
        ledger.record(applied)
    return Applied(fresh, len(envelopes) - len(fresh), len(batch), new, newest_per_device(batch))


class RowStore(Protocol):
    """A SeriesStore whose `write` also takes validated wire rows; it says so with `takes_rows = True`."""

    def write(self, rows: Sequence[Row]) -> int:
        """Store rows idempotently; return how many were new."""
        ...


def _write(store: SeriesStore, rows: list[Row]) -> int:
    """Write rows as they are to a store that takes them (no Reading objects built), else as Readings."""
    if getattr(store, "takes_rows", False) is True:
        return cast(RowStore, store).write(rows)
    readings = [
        r if type(r) is Reading else Reading(d, q, v, u, ts, Quality(ql), None if why is None else Reason(why))
        for r in rows
        for d, q, v, u, ts, ql, why in (r,)
    ]
    return store.write(readings)


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message, as the writer thread needs it."""

    topic: str
    payload: bytes
    retained: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """A processed batch: what was applied, what was rejected, and liveness verdicts in arrival order."""

    applied: Applied
    rejected: list[Rejected]
    liveness: list[tuple[Heartbeat | Offline, bool]]  # (verdict, retained)


def process_batch(
    messages: Sequence[Message],
    directory: GatewayDirectory,
    store: SeriesStore,
    alerts: AlertSink,
    ledger: Ledger,
    *,
    max_bytes: int,
) -> Outcome:
    """Admit every message, then apply the admitted envelopes once (steps 0-4 of the module docstring)."""
    envelopes: list[Envelope] = []
    rows: list[Sequence[Row] | None] = []
    rejected: list[Rejected] = []
    liveness: list[tuple[Heartbeat | Offline, bool]] = []
    for message in messages:
        verdict = admit(message.topic, message.payload, directory, max_bytes=max_bytes, rows=True)
        if isinstance(verdict, Batch):
            envelopes.append(verdict.envelope)
            rows.append(verdict.rows)
        elif isinstance(verdict, Rejected):
            rejected.append(verdict)
        else:
            liveness.append((verdict, message.retained))
    return Outcome(apply_batch(envelopes, store, alerts, ledger, rows), rejected, liveness)
