"""The live stream through a real uvicorn server and real WebSocket / SSE clients: latency, scope, resume, slowness."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus

from cloud.incidents.model import evolve
from cloud.incidents.roles import Actor
from cloud.live.events import case_change
from cloud.service import wall_ms
from tests.live.live_rig import FAR_GRID, GRID, alert, cloud, fire, receive, settings_for

pytestmark = pytest.mark.integration


async def test_an_alert_case_reaches_the_center_within_2s_and_never_another_grids_worker(tmp_path: Path) -> None:
    """A case opened by an alert reaches the command center in < 2 s with its light; a far grid worker gets none."""
    async with cloud(settings_for(tmp_path, "a")) as rig, rig.live("center") as center, rig.live("far") as far:
        hello = await receive(center)
        assert hello["type"] == "hello"
        assert hello["data"]["hub"] == rig.service.live.hub.origin
        assert (await receive(far))["type"] == "hello"
        started = time.monotonic()
        await fire(rig.service, alert("tilt-1", wall_ms() - 1000))
        got: dict[str, Any] = {}
        while "case" not in got:
            message = await receive(center)
            got[message["type"]] = message
        elapsed = time.monotonic() - started
        assert elapsed < 2.0
        case = got["case"]["data"]
        assert (case["grid"], case["category"], case["kind"]) == (GRID, "manhole_cover", "governance")
        assert case["light"] in ("green", "yellow", "red")
        # The far worker's next message is a case of its own grid published afterwards, not the first one.
        await fire(rig.service, alert("tilt-far", wall_ms() - 1000, grid=FAR_GRID))
        first = await receive(far)
        assert first["data"]["grid"] == FAR_GRID
        assert first["seq"] > got["case"]["seq"]


async def test_a_client_that_reconnects_with_since_misses_nothing(tmp_path: Path) -> None:
    """Changes made while a worker was away arrive on reconnect with `since`: each case in its latest state."""
    async with cloud(settings_for(tmp_path, "a")) as rig:
        async with rig.live("worker") as ws:
            hello = await receive(ws)
            await fire(rig.service, alert("tilt-1", wall_ms() - 5000))
            last = hello["seq"]
            while True:
                message = await receive(ws)
                last = message["seq"]
                if message["type"] == "case":
                    break
        hub = hello["data"]["hub"]
        # Away: two more cases open and the first is signed for through the REST API.
        await fire(rig.service, alert("tilt-2", wall_ms() - 4000), alert("tilt-3", wall_ms() - 3000, rule="x_tilt"))
        async with httpx.AsyncClient(base_url=rig.url) as client:
            client.headers["Authorization"] = f"Bearer {rig.tokens['worker']}"
            cases = (await client.get("/api/v1/incidents")).json()["items"]
            client.headers["Authorization"] = f"Bearer {rig.tokens['cg']}"
            first = min(c["id"] for c in cases)
            signed = await client.post(f"/api/v1/incidents/{first}/actions", json={"kind": "sign"})
            assert signed.status_code == 200, signed.text
            client.headers["Authorization"] = f"Bearer {rig.tokens['worker']}"
            truth = {c["id"]: c["state"] for c in (await client.get("/api/v1/incidents")).json()["items"]}
        assert len(truth) >= 2
        async with rig.live("worker", since=last, hub=hub) as ws:
            assert (await receive(ws))["data"]["seq"] == last
            seen: dict[int, str] = {}
            while seen != truth:
                message = await receive(ws)
                assert message["seq"] > last
                assert message["type"] in ("case", "alert")
                last = message["seq"]
                if message["type"] == "case":
                    seen[message["data"]["id"]] = message["data"]["state"]
        assert seen[first] == "in_progress"


async def test_a_slow_client_gets_conflated_updates_and_pending_stays_bounded(tmp_path: Path) -> None:
    """A client that stops reading while 20,000 updates of 50 cases flow is never cut off and ends with the latest."""
    async with cloud(settings_for(tmp_path, "a")) as rig, rig.live("center") as ws:
        await receive(ws)
        await fire(rig.service, alert("tilt-1", wall_ms() - 1000))
        (case,) = rig.service.incidents.cases(Actor.system("test"))
        stream, hub = rig.service.live.stream, rig.service.live.hub
        latest: dict[int, str] = {}
        peak = 0
        for n in range(20_000):
            latest[n % 50] = f"s{n}"
            stream.publish(case_change(evolve(case, id=n % 50, state=f"s{n}", title="x" * 200), wall_ms()))
            if n % 500 == 0:
                peak = max(peak, hub.stats()[0]["pending"])
                await asyncio.sleep(0)  # a loop turn for the server's sender, blocked by the unread socket
        (stats,) = hub.stats()
        assert stats["conflated"] > 10_000
        assert stats["overflowed"] == 0
        assert 0 < peak <= 50
        view: dict[int, str] = {}
        while view != latest:
            message = await receive(ws, 10)
            if message["type"] == "case" and message["data"]["title"] == "x" * 200:
                view[message["data"]["id"]] = message["data"]["state"]
        assert hub.stats()[0]["delivered"] < 20_000


async def test_sse_resumes_from_last_event_id(tmp_path: Path) -> None:
    """The SSE stream sends `id:` = seq and, given Last-Event-ID, replays the events after it."""
    async with cloud(settings_for(tmp_path, "a")) as rig:
        await fire(rig.service, alert("tilt-1", wall_ms() - 1000))
        seq0 = rig.service.live.hub.seq
        await fire(rig.service, alert("tilt-2", wall_ms() - 1000, rule="y_tilt"))
        headers = {"Authorization": f"Bearer {rig.tokens['center']}", "Last-Event-ID": str(seq0)}
        async with (
            httpx.AsyncClient(base_url=rig.url, timeout=10) as client,
            client.stream("GET", "/api/v1/live/sse", headers=headers) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            ids: list[int] = []
            types: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
                elif line.startswith("data: "):
                    types.append(orjson.loads(line[6:])["type"])
                if len(types) == 2:
                    break
        assert ids[0] == seq0
        assert types[0] == "hello"
        assert ids[1] > seq0
        assert types[1] in ("alert", "case")


async def test_a_bad_token_is_refused(tmp_path: Path) -> None:
    """A WebSocket without a valid token is refused at the handshake; SSE answers 401."""
    async with cloud(settings_for(tmp_path, "a")) as rig:
        rig.tokens["nobody"] = "not-a-token"
        with pytest.raises(InvalidStatus):
            async with rig.live("nobody"):
                pass
        async with httpx.AsyncClient(base_url=rig.url) as client:
            assert (await client.get("/api/v1/live/sse", params={"token": "nope"})).status_code == 401
