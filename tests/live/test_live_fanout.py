"""Fan-out across API processes: two clouds on one mosquitto (with the shipped ACL) both deliver each other's events."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.ingest import IngestSettings
from cloud.live.fanout import WireError, decode, encode
from cloud.live.hub import Event
from cloud.live.scope import subject
from cloud.service import wall_ms
from tests.live.live_rig import FAR_GRID, GRID, alert, cloud, fire, receive, settings_for
from tests.support.fixtures_mosquitto import BROKER_USERS
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import eventually


def test_wire_round_trip_and_malformed_payloads() -> None:
    """An event survives the wire; garbage, other versions and mistyped fields raise WireError."""
    data = {"id": 1, "grid": GRID}
    event = Event(7, "case", "case:1", data, "origin-a", subject("case", data))
    origin, change = decode(encode(event))
    assert (origin, change.type, change.key, change.data) == ("origin-a", "case", "case:1", {"id": 1, "grid": GRID})
    for bad in (b"", b"\xff", b"[]", b'{"v": 2}', b'{"v": 1, "origin": "a", "type": "x", "key": "k", "data": {}}'):
        with pytest.raises(WireError):
            decode(bad)


@pytest.mark.integration
async def test_two_api_processes_both_deliver_an_event_from_one(
    tmp_path: Path, mosquitto_auth_broker: Mosquitto
) -> None:
    """A case opened in cloud A reaches subscribers of A and of B once each; a far worker on B gets only its grid."""
    broker = mosquitto_auth_broker

    def ingest(name: str) -> IngestSettings:
        return IngestSettings(
            host=broker.host, port=broker.port, username="ingest", password=BROKER_USERS["ingest"], client_id=name
        )

    shared_db = str(tmp_path / "shared.db")
    a_settings = settings_for(tmp_path, "a", database=shared_db, ingest=ingest("ingest-a"), ingest_workers=1)
    b_settings = settings_for(tmp_path, "b", database=shared_db, ingest=ingest("ingest-b"), ingest_workers=1)
    async with cloud(a_settings) as a, cloud(b_settings, create_users=False) as b:
        fan_a, fan_b = a.service.live.fanout, b.service.live.fanout
        assert fan_a is not None
        assert fan_b is not None
        await eventually(lambda: fan_a.subscribed.is_set() and fan_b.subscribed.is_set(), what="both bridges")
        async with a.live("center") as on_a, b.live("center") as on_b, b.live("far") as far_b:
            for ws in (on_a, on_b, far_b):
                assert (await receive(ws))["type"] == "hello"
            await fire(a.service, alert("tilt-1", wall_ms() - 1000))
            for ws in (on_a, on_b):
                kinds: dict[str, dict[str, object]] = {}
                while "case" not in kinds or "alert" not in kinds:
                    message = await receive(ws)
                    kinds[str(message["type"])] = message["data"]
                assert kinds["case"]["grid"] == GRID
            await fire(a.service, alert("tilt-far", wall_ms() - 1000, grid=FAR_GRID))
            first = await receive(far_b)
            assert first["data"]["grid"] == FAR_GRID
        await eventually(lambda: fan_a.counters["own"] >= 4, what="A's own echoes dropped")
        assert fan_b.counters["received"] >= 4
        assert b.service.live.hub.remote == fan_b.counters["received"]
        assert a.service.live.hub.remote == 0
