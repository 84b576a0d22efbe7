"""The cloud's SQL layer on a real PostgreSQL: the same registry, auth and ledger code as on SQLite."""

from __future__ import annotations

import pytest

from cloud.auth import Auth, Role
from cloud.db import Database, IntegrityError
from cloud.ingest import SqlLedger
from cloud.registry import Device, Registry, TokenUsed
from gateway.enrolment import BrokerEndpoint

pytestmark = pytest.mark.integration


def test_registry_auth_and_ledger_run_on_postgres(postgres_url: str) -> None:
    """Migrations apply, enrolment is one-time, users authenticate and the seq ledger dedups on PostgreSQL."""
    db = Database.open(postgres_url)
    assert db.dialect == "postgres"
    registry = Registry(db, BrokerEndpoint(host="127.0.0.1", port=1883))
    gateway, token = registry.register_gateway("gw-pg", "site", now=1_000)
    registry.bind_device(
        Device(id="TH-1", gateway=gateway.id, profile="temp-humidity-mqtt", grid="41010210100101"), 1_000
    )
    creds = registry.enrol(token.token, now=2_000)
    assert registry.check_password(gateway.id, creds.password)
    with pytest.raises(TokenUsed):
        registry.enrol(token.token, now=3_000)
    assert [d.id for d in registry.devices(gateway.id)] == ["TH-1"]

    auth = Auth(db)
    auth.create_user("ops", "pw", Role.MAINTAINER, now=0)
    user = auth.authenticate("ops", "pw")
    assert user is not None
    assert auth.user_for_token(auth.issue_token(user, now=0), now=1) == user

    ledger = SqlLedger(db)
    assert ledger.unapplied("gw-pg", [1, 2, 3]) == {1, 2, 3}
    with db.transaction():
        ledger.record({"gw-pg": [1, 3]})
    assert ledger.unapplied("gw-pg", [1, 2, 3]) == {2}
    with pytest.raises(IntegrityError):
        db.execute(
            "INSERT INTO users (username, password_hash, role, scope, created_ms) VALUES ('ops', 'x', 'r', '', 0)"
        )
    db.close()
