"""Where live events come from: the case engine's committed case writes, handled alerts and liveness events.

Chosen approach (no edit of cloud/incidents/): the tap wraps, on the instances only, the `CaseStore`
methods that write cases (`insert`, `insert_many`, `update`, `update_many`) and its `transaction`, and
the `Incidents` entries `handle_batch` (alerts: the ingest AlertSink, and `handle` goes through it) and
`liveness_events` (fleet). Written cases are collected per thread; when that thread's outermost case
transaction commits, the last written version of each is published with its light at `now`, so intake, the
scheduler, API actions, reports and emergencies are all covered by one hook and a rolled-back
transaction publishes nothing. Alerts and fleet changes are published after the engine has taken them.
A new case-writing CaseStore method would need adding to CASE_WRITES.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

from cloud.fleet import LivenessEvent
from cloud.incidents.engine import Incidents
from cloud.incidents.model import Case
from cloud.incidents.ports import Locator
from cloud.live.events import alert_change, case_change, fleet_change
from cloud.live.stream import Stream
from gateway.alerts import AlertEvent

CASE_WRITES: Final = ("insert", "update")
CASE_BATCH_WRITES: Final = ("insert_many", "update_many")


class _Pending(threading.local):
    """One thread's open case transactions and the cases written in them (the last write of each)."""

    def __init__(self) -> None:
        self.depth = 0
        self.cases: dict[int, Case] = {}


class Tap:
    """Hooks `incidents` so its changes reach `stream`; `install()` once."""

    def __init__(
        self, incidents: Incidents, stream: Stream, clock: Callable[[], int], *, locator: Locator | None = None
    ) -> None:
        self.incidents = incidents
        self.stream = stream
        self.clock = clock
        self.locator = locator
        self.installed = False
        self._pending = _Pending()

    def install(self) -> None:
        """Wrap the store's case writes and transaction and the engine's alert and liveness entries."""
        if self.installed:
            return
        store = self.incidents.store
        for name in CASE_WRITES:
            setattr(store, name, self._single(getattr(store, name)))
        for name in CASE_BATCH_WRITES:
            setattr(store, name, self._batch(getattr(store, name)))
        setattr(store, "transaction", self._transaction(store.transaction))  # noqa: B010 (mypy: method assign)
        setattr(self.incidents, "handle_batch", self._handle_batch(self.incidents.handle_batch))  # noqa: B010
        setattr(self.incidents, "liveness_events", self._liveness(self.incidents.liveness_events))  # noqa: B010
        self.installed = True

    def _written(self, cases: Iterable[Case]) -> None:
        # A write stores the whole case it is given (an update, the fields that differ from the row it
        # read), so the last case written is the row as committed: no read back.
        self._pending.cases.update((case.id, case) for case in cases)
        if self._pending.depth == 0:  # a write outside any case transaction is committed already
            self._flush()

    def _flush(self) -> None:
        cases, self._pending.cases = self._pending.cases, {}
        if not cases:
            return
        now = self.clock()
        for case_id in sorted(cases):
            self.stream.publish(case_change(cases[case_id], now))

    def _single(self, write: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(write)
        def wrapper(case: Case, *args: Any) -> None:
            write(case, *args)
            self._written((case,))

        return wrapper

    def _batch(self, write: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(write)
        def wrapper(items: Iterable[Any]) -> None:
            items = list(items)
            write(items)
            self._written(item[0] if isinstance(item, tuple) else item for item in items)

        return wrapper

    def _transaction(self, transaction: Callable[[], contextlib.AbstractContextManager[Any]]) -> Callable[..., Any]:
        pending = self._pending

        @contextlib.contextmanager
        def wrapper() -> Iterator[Any]:
            pending.depth += 1
            try:
                with transaction() as store:
                    yield store
            except BaseException:
                pending.depth -= 1
                if pending.depth == 0:
                    pending.cases.clear()  # rolled back: nothing to tell
                raise
            pending.depth -= 1
            if pending.depth == 0:
                self._flush()

        return wrapper

    def _handle_batch(
        self, handle_batch: Callable[[Sequence[tuple[str, Sequence[AlertEvent]]]], None]
    ) -> Callable[..., None]:
        @functools.wraps(handle_batch)
        def wrapper(envelopes: Sequence[tuple[str, Sequence[AlertEvent]]]) -> None:
            handle_batch(envelopes)
            for _, alerts in envelopes:
                for alert in alerts:
                    self.stream.publish(alert_change(alert, self._grid(alert)))

        return wrapper

    def _liveness(self, take: Callable[[Sequence[LivenessEvent]], None]) -> Callable[..., None]:
        @functools.wraps(take)
        def wrapper(events: Sequence[LivenessEvent]) -> None:
            take(events)
            for event in events:
                self.stream.publish(fleet_change(event))

        return wrapper

    def _grid(self, alert: AlertEvent) -> str | None:
        loc = alert.location
        if loc is None:
            return None
        if loc.grid:
            return loc.grid
        if self.locator is not None and loc.lat is not None and loc.lon is not None:
            return self.locator.locate(loc.lat, loc.lon)
        return None
