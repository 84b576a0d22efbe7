"""The whole chain into a real browser: a sensor's MQTT message → agent process → broker → ingest → case → page.

Two real mosquittos (the gateway's field broker and the cloud's), `gridwatch agent` as its own process, the cloud
with its ingest worker under uvicorn, and Debian's Chromium: a tilted manhole cover must be on the command center's
map and queue within 2 s of its tilt having held for the profile's 3 s, though the cover reports only once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

import aiomqtt
import orjson
import pytest
import uvicorn
import yaml
from playwright.async_api import expect

from cloud.api import create_app
from cloud.incidents.model import Case
from cloud.incidents.roles import Actor
from cloud.incidents.store import CaseFilter
from cloud.ingest import IngestSettings
from cloud.service import CloudService, wall_ms
from cloud.settings import CloudSettings
from gateway.readings import Reading
from gridwatch.broker import Mosquitto, free_port
from tests.agent.agent_rig import start_agent, stop_agent
from tests.support.waiting import eventually, eventually_async
from tests.web.web_rig import GRID, LIVE_MS, PASSWORD, chromium, open_as

pytestmark = pytest.mark.integration

GATEWAY: Final = "gw-web"
COVER: Final = "MH-0001"
HOLD_MS: Final = 3000  # manhole-tilt-mqtt: cover_tilted over 10° `for: 3s`
PLACE: Final = {"lat": 34.7981, "lon": 113.5312, "grid": GRID, "part_id": "4101020402000001"}


@contextlib.asynccontextmanager
async def cloud(tmp_path: Path, upstream: Mosquitto) -> AsyncIterator[tuple[CloudService, str]]:
    """Run the cloud (API + one ingest worker on `upstream`) on a free port; yield the service and base URL."""
    settings = CloudSettings.model_validate(
        {
            "data_dir": str(tmp_path / "cloud"),
            "port": free_port(),
            "ingest": IngestSettings(host=upstream.host, port=upstream.port, client_id="ingest-web"),
            "admin_password": "admin-pw",
        }
    )
    service = CloudService(settings)
    service.auth.create_user("command", PASSWORD, "shift_lead", wall_ms(), scope=service.district.code)
    _, token = service.registry.register_gateway(GATEWAY, "office 1", wall_ms())
    service.registry.enrol(token.token, wall_ms())  # ingest takes messages only from enrolled gateways
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=settings.port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="the API to listen")
        await eventually(lambda: all(w.connected for w in service.workers), what="ingest to connect")
        yield service, f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        await task
        service.close()


def agent_config(path: Path, field: Mosquitto, upstream: Mosquitto) -> Path:
    """Write the gateway's configuration: one manhole-cover sensor on the field broker, placed in GRID."""
    doc = {
        "gateway": {"id": GATEWAY, "data_dir": str(path.parent / "agent-data")},
        "uplink": {"host": upstream.host, "port": upstream.port, "heartbeat_s": 1, "batch": {"max_age_s": 0.1}},
        "local_broker": {"host": field.host, "port": field.port},
        "devices": [
            {
                "id": COVER,
                "profile": "manhole-tilt-mqtt",
                "topic": f"covers/{COVER}",
                "place": PLACE,
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def cover_message(tilt: float, ts_ms: int) -> bytes:
    """The sensor's JSON report, as the profile documents it."""
    return orjson.dumps({"devId": COVER, "ts": ts_ms, "data": {"tilt": tilt, "battery": 87}})


async def eventually_true(condition: Callable[[], bool], within_s: float) -> bool:
    """Return whether `condition()` comes to hold within `within_s` seconds."""
    try:
        await eventually(condition, within_s)
    except AssertionError:
        return False
    return True


def stored_tilts(service: CloudService) -> list[Reading]:
    """Return the cover's stored tilt readings of the last hour."""
    now = wall_ms()
    return service.store.readings(COVER, "tilt", now - 3_600_000, now + 60_000)


def open_cases(service: CloudService) -> list[Case]:
    """Return the open cases, as the engine's own actor sees them."""
    return service.incidents.cases(Actor.system("test"), CaseFilter(open_only=True))


async def test_a_tilted_cover_reaches_the_command_center_through_a_real_agent(tmp_path: Path) -> None:
    """A cover reporting once that it tilted past 10° is a case on the page within 2 s of the 3 s hold passing."""
    async with (
        Mosquitto(tmp_path / "field") as field,
        Mosquitto(tmp_path / "upstream") as upstream,
        cloud(tmp_path, upstream) as (service, base),
        chromium() as browser,
    ):
        agent = await start_agent(agent_config(tmp_path / "agent.yaml", field, upstream))
        try:
            command = await open_as(browser, base, "command")
            await expect(command.locator("#live-status")).to_have_attribute("data-mode", "live")
            async with aiomqtt.Client(field.host, field.port, identifier="cover-sensor") as sensor:
                # The cover reports level on its heartbeat until the agent (still subscribing) has stored one.
                async def heartbeat() -> bool:
                    await sensor.publish(f"covers/{COVER}", cover_message(1.5, wall_ms()), qos=1)
                    return await eventually_true(lambda: bool(stored_tilts(service)), 1.0)

                await eventually_async(heartbeat, 30, what="the agent's first reading")
                assert not open_cases(service)
                # The cover tilts and reports once, as these sensors do; the profile's rule needs 3 s held.
                tilted = time.monotonic()
                await sensor.publish(f"covers/{COVER}", cover_message(35.0, wall_ms()), qos=1)
                row = command.locator("#case-list .case-row")
                await expect(row).to_have_count(1, timeout=HOLD_MS + LIVE_MS)
                await expect(command.locator("#map circle.pin")).to_have_count(1, timeout=LIVE_MS)
                on_screen = time.monotonic() - tilted
            # Not before the hold has passed, and within 2 s of its passing.
            assert HOLD_MS / 1000 <= on_screen <= (HOLD_MS + LIVE_MS) / 1000
            (case,) = open_cases(service)
            assert case.device == COVER
            assert case.grid == GRID
            await row.click()
            await expect(command.locator("#detail")).to_have_attribute("data-case-id", str(case.id))
            await expect(command.locator("#detail")).to_contain_text(COVER)
        finally:
            await stop_agent(agent)
