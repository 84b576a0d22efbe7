"""The applied-seq ledger: watermark plus bounded window, in memory and in the SQL layer, against a plain set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.db import Database
from cloud.ingest.ledger import MemoryLedger, SqlLedger, compact


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite database through the cloud SQL layer."""
    with Database.open(tmp_path / "cloud.db") as database:
        yield database


def test_compact_raises_the_watermark_over_contiguous_runs_only() -> None:
    """Seqs 1-3 and 5 leave the watermark at 3 with 5 kept above the gap at 4."""
    assert compact(0, [3, 1, 2, 5], window=100) == (3, [5])


def test_compact_passes_a_gap_once_it_is_a_window_behind() -> None:
    """A gap at 4 is given up when the top seq is more than `window` above the watermark."""
    assert compact(3, [5, 6, 20], window=10) == (10, [20])


def test_memory_and_sql_ledgers_agree_on_a_late_batch_below_the_window(db: Database) -> None:
    """A seq more than `window` below the newest counts as applied in both ledgers."""
    for ledger in (MemoryLedger(window=8), SqlLedger(db, window=8)):
        ledger.record({"gw-a": [1, 2, 4, 30]})
        assert ledger.watermark("gw-a") == 22
        assert ledger.unapplied("gw-a", [3, 22, 23, 30, 31]) == {23, 31}


def test_sql_ledger_survives_a_reopen(tmp_path: Path) -> None:
    """What one ledger recorded is applied for a ledger opened later on the same file."""
    with Database.open(tmp_path / "cloud.db") as db:
        SqlLedger(db).record({"gw-a": [1, 2, 3, 7], "gw-b": [1]})
    with Database.open(tmp_path / "cloud.db") as db:
        ledger = SqlLedger(db)
        assert ledger.unapplied("gw-a", range(1, 9)) == {4, 5, 6, 8}
        assert ledger.unapplied("gw-b", [1, 2]) == {2}
        assert ledger.pending_rows("gw-a") == 1


def test_forget_starts_a_gateway_over(db: Database) -> None:
    """After `forget` (edge buffer reset) the gateway's seqs count as new again."""
    ledger = SqlLedger(db)
    ledger.record({"gw-a": [1, 2]})
    ledger.forget("gw-a")
    assert ledger.unapplied("gw-a", [1, 2]) == {1, 2}


batches = st.lists(st.lists(st.integers(min_value=1, max_value=300), max_size=12), max_size=25)


@settings(max_examples=150, deadline=None)
@given(batches=batches, window=st.integers(min_value=1, max_value=64))
def test_ledgers_never_forget_an_applied_seq_and_never_invent_one_inside_the_window(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]], window: int
) -> None:
    """Every recorded seq stays applied; an unrecorded seq within `window` of the newest stays unapplied."""
    with Database.open(tmp_path_factory.mktemp("ledger") / "cloud.db") as db:
        ledgers = (MemoryLedger(window), SqlLedger(db, window))
        recorded: set[int] = set()
        for batch in batches:
            for ledger in ledgers:
                ledger.record({"gw-a": batch})
            recorded |= set(batch)
            top = max(recorded, default=0)
            probe = range(1, 305)
            for ledger in ledgers:
                new = ledger.unapplied("gw-a", probe)
                assert not new & recorded
                assert {s for s in probe if s not in recorded and s > top - window} <= new
            assert ledgers[1].pending_rows("gw-a") <= window
