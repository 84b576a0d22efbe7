"""Case and audit ids come from reserved blocks that grow with demand, on both engines."""

from __future__ import annotations

import pytest

from cloud.db import Database
from cloud.incidents.store import ID_BLOCK, ID_BLOCK_MAX, CaseStore


@pytest.fixture
def db(each_engine_db: Database) -> Database:
    """An empty database of each engine."""
    return each_engine_db


def reserved(db: Database, name: str) -> int:
    """Return how many ids of counter `name` have been reserved so far."""
    row = db.fetchone("SELECT value FROM incident_counters WHERE name = ?", (name,))
    return 0 if row is None else int(row[0])


def test_blocks_double_up_to_the_cap_and_ids_stay_dense_within_a_process(db: Database) -> None:
    """Each reservation is twice the last (64, 128, ... up to the cap); the ids handed out have no gap."""
    store = CaseStore(db)
    sizes, total = [], 0
    ids = []
    while len(sizes) < 9:
        ids.append(store.new_id("case"))
        if ids[-1] > total:  # past what was reserved: this id came with a new block
            sizes.append(reserved(db, "case") - total)
            total += sizes[-1]
    assert sizes == [min(ID_BLOCK * 2**i, ID_BLOCK_MAX) for i in range(9)]
    assert ids == list(range(1, len(ids) + 1))


def test_a_restarted_store_starts_with_a_small_block_after_the_reserved_ones(db: Database) -> None:
    """A new store (a restart) continues after every id reserved before it, with a first block of ID_BLOCK."""
    first = CaseStore(db)
    for _ in range(ID_BLOCK + 1):
        first.new_id("audit")
    before = reserved(db, "audit")
    again = CaseStore(db)
    assert again.new_id("audit") == before + 1
    assert reserved(db, "audit") == before + ID_BLOCK
