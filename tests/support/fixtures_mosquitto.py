"""pytest fixtures over the mosquitto harness: a started broker per test, anonymous or with ACLs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto

# Credentials of the auth broker: two gateways (usernames = gateway ids) and one cloud ingest user.
BROKER_USERS: dict[str, str] = {"gw-a": "pw-a", "gw-b": "pw-b", "ingest": "pw-ingest"}


@pytest.fixture
async def mosquitto_broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    """A running anonymous mosquitto from our shipped config on a free loopback port."""
    async with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
async def mosquitto_auth_broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    """A running mosquitto with password file and ACL; users and passwords are BROKER_USERS."""
    async with Mosquitto(tmp_path / "mosquitto-auth", auth=True, users=BROKER_USERS) as broker:
        yield broker
