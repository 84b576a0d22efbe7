"""The command-center page in a real browser: Debian's Chromium driven by Playwright against a real cloud on a port.

The cloud is CloudService + create_app under uvicorn on a free port (no broker: ingest_workers=0); sensor alerts
are handed to the incident engine as ingest would. The page gets updates from the live stream when it is
mounted and from REST polling otherwise; either way a case must show within 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest
import uvicorn
from playwright.async_api import Locator, Page, expect

from cloud.api import create_app
from cloud.incidents.roles import Actor
from cloud.incidents.silences import Matchers
from cloud.incidents.store import CaseFilter
from cloud.service import CloudService, wall_ms
from cloud.settings import CloudSettings
from gateway.alerts import AlertEvent, AlertState, Location
from gateway.readings import Reading
from gridwatch.broker import free_port
from tests.support.waiting import eventually
from tests.web.web_rig import DISTRICT, GRID, LIVE_MS, PASSWORD, TILE_HOST, chromium, open_as

pytestmark = pytest.mark.integration

SCREENSHOT: Final = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
FAR_GRID: Final = DISTRICT.grids[-1].code
USERS: Final = {
    "command": ("shift_lead", DISTRICT.code),
    "worker": ("grid_worker", GRID),
    "far": ("grid_worker", FAR_GRID),
    "cg": ("dept_handler", "CGJ"),
}


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Return the XYZ (Web Mercator) tile holding a point at zoom z."""
    n = 2**z
    rad = math.radians(lat)
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(rad)) / math.pi) / 2 * n)


@contextlib.asynccontextmanager
async def cloud(tmp_path: Path, **extra: Any) -> AsyncIterator[tuple[CloudService, str]]:
    """Run the real cloud API on a free port with the USERS created; yield the service and base URL."""
    settings = CloudSettings.model_validate(
        {"data_dir": str(tmp_path / "cloud"), "ingest_workers": 0, "admin_password": "admin-pw", **extra}
    )
    service = CloudService(settings)
    for name, (role, scope) in USERS.items():
        service.auth.create_user(name, PASSWORD, role, wall_ms(), scope=scope)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(service, run_background=False), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="the API to listen")
        yield service, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        service.close()


def fire(
    service: CloudService, device: str, grid: str, ts: int, lat: float | None = None, lon: float | None = None
) -> None:
    """Hand one firing tilt alert to the engine, as an ingest worker does."""
    alert = AlertEvent(
        "gw-1",
        device,
        "cover_tilted",
        AlertState.FIRING,
        1,
        ts,
        quantity="tilt",
        value=35.0,
        threshold=20.0,
        location=Location(lat=lat, lon=lon, grid=grid),
    )
    service.incidents.handle("gw-1", [alert])


def write_series(service: CloudService, device: str, crossing_ms: int) -> None:
    """Store a tilt series that crosses 20° at `crossing_ms` (the sparkline's data)."""
    points = [
        Reading(device, "tilt", 2.0 + (40.0 if ts >= crossing_ms else ts % 7), "deg", ts)
        for ts in range(crossing_ms - 20 * 60_000, crossing_ms + 60_000, 60_000)
    ]
    service.store.write(points)


def open_case_ids(service: CloudService) -> list[int]:
    """Return the ids of the open cases, as the engine's own actor sees them."""
    return [c.id for c in service.incidents.cases(Actor.system("test"), CaseFilter(open_only=True), limit=100)]


async def fetch_status(page: Page, path: str) -> int:
    """Return the HTTP status of a GET made by the page with its own token."""
    status: int = await page.evaluate(
        """async (path) => {
            const headers = {Authorization: "Bearer " + sessionStorage.getItem("gw.token")};
            return (await fetch(path, {headers})).status;
        }""",
        path,
    )
    return status


def case_row(page: Page, case_id: int) -> tuple[Locator, Locator]:
    """Return the queue row and the map pin of one case."""
    return (
        page.locator(f'#case-list .case-row[data-case-id="{case_id}"]'),
        page.locator(f'#map circle.pin[data-case-id="{case_id}"]'),
    )


async def act(page: Page, case_id: int, action: str, outcome: str = "") -> None:
    """Open a case's detail and press one action button."""
    await page.locator(f'#case-list .case-row[data-case-id="{case_id}"]').click()
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", str(case_id))
    selector = f'#actions button[data-action="{action}"][data-outcome="{outcome}"]'
    await page.locator(selector).click()


async def test_command_center_and_grid_workers_work_a_sensor_case_in_the_browser(tmp_path: Path) -> None:
    """An alert's case shows in 2 s to the center and its grid's worker, never another's; acting updates the page."""
    async with cloud(tmp_path) as (service, base), chromium() as browser:
        command = await open_as(browser, base, "command")
        worker = await open_as(browser, base, "worker")
        far = await open_as(browser, base, "far")
        cg = await open_as(browser, base, "cg")
        await expect(command.locator('.tile[data-kpi="closed"] b')).to_have_text("0")
        await expect(command.locator('#menu [data-view="kpi"]')).to_be_visible()
        await expect(command.locator("#tiles image")).to_have_count(0)  # no tile server set: polygons only
        await expect(worker.locator('#menu [data-view="kpi"]')).to_be_hidden()

        now = wall_ms()
        write_series(service, "tilt-1", now - 60_000)
        fire(service, "tilt-1", GRID, now - 60_000, 34.7981, 113.5312)
        (case_id,) = open_case_ids(service)
        for page in (command, worker):
            row, pin = case_row(page, case_id)
            await expect(row).to_be_visible(timeout=LIVE_MS)
            await expect(pin).to_be_visible(timeout=LIVE_MS)
            await expect(pin).to_have_attribute("data-light", "green")
        await expect(command.locator('#queues .qbtn[data-queue="dispatched"] .count')).to_have_text("1")

        # Other cases elsewhere in the district, for the center's picture; the far worker sees none of them.
        for i, code in enumerate((DISTRICT.grids[40].code, DISTRICT.grids[120].code)):
            write_series(service, f"tilt-{i + 2}", now - 30_000)
            fire(service, f"tilt-{i + 2}", code, now - 30_000)
        await expect(command.locator("#case-list .case-row")).to_have_count(3, timeout=LIVE_MS)
        await expect(worker.locator("#case-list .case-row")).to_have_count(1, timeout=LIVE_MS)
        await far.reload()
        await expect(far.locator("#case-list .empty")).to_be_visible()
        await expect(far.locator("#map circle.pin")).to_have_count(0)
        assert await fetch_status(far, f"/api/v1/incidents/{case_id}") == 404

        await act(cg, case_id, "sign")
        await expect(cg.locator("#detail-state")).to_have_text("处置中")
        await act(cg, case_id, "report_handled")
        await expect(cg.locator("#detail")).to_have_attribute("data-state", "handled")
        await expect(command.locator(f'#case-list .case-row[data-case-id="{case_id}"]')).to_have_attribute(
            "data-state", "handled", timeout=LIVE_MS
        )

        await act(worker, case_id, "check", "fail")  # a failed check needs a reason: the API's refusal is shown
        await expect(worker.locator("#action-error")).to_have_attribute("data-reason", "invalid")
        await worker.locator('#actions button[data-action="check"][data-outcome="pass"]').click()
        await expect(worker.locator("#detail")).to_have_attribute("data-state", "checking")
        await expect(worker.locator("#timeline li")).to_have_count(7)

        await act(command, case_id, "close")
        await expect(command.locator("#detail")).to_have_attribute("data-state", "closed")
        await command.locator("#detail-close").click()
        row, pin = case_row(command, case_id)
        await expect(row).to_have_count(0)
        await expect(pin).to_have_count(0)
        await expect(command.locator('.tile[data-kpi="closed"] b')).to_have_text("1", timeout=LIVE_MS * 3)
        await expect(worker.locator("#map circle.pin")).to_have_count(0, timeout=LIVE_MS)

        await command.click('#menu [data-view="kpi"]')
        await expect(command.locator("#rank-office tr[data-unit]")).not_to_have_count(0)
        await expect(command.locator('#rank-department tr[data-unit="CGJ"] td').nth(3)).to_have_text("1")
        await command.click('#menu [data-view="overview"]')

        # A maintenance window over one 片区 is drawn hatched.
        area = DISTRICT.areas[7].code
        service.incidents.add_silence(
            Actor("command", "shift_lead", DISTRICT.code), Matchers(grid=area), "维护", now, now + 3_600_000, now
        )
        await expect(command.locator(f'#silences path.silenced[data-code="{area}"]')).to_be_visible(timeout=LIVE_MS * 3)

        # The picture for the README: the center with the open cases and one case's detail.
        await command.locator("#case-list .case-row").first.click()
        await expect(command.locator("#timeline li")).to_have_count(4)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await command.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 10_000


async def test_a_page_that_loses_its_live_socket_resumes_and_misses_nothing(tmp_path: Path) -> None:
    """A case opened while the page's socket is down shows in 2 s; it resumes with since and hub; English works."""
    async with cloud(tmp_path) as (service, base), chromium() as browser:
        command = await open_as(browser, base, "command")
        sockets: list[str] = []
        command.on("websocket", lambda ws: sockets.append(ws.url))
        await expect(command.locator("#live-status")).to_have_attribute("data-mode", "live")
        fire(service, "tilt-1", GRID, wall_ms() - 1000)
        await expect(command.locator("#case-list .case-row")).to_have_count(1, timeout=LIVE_MS)
        seen: int = await command.evaluate(
            "(() => { const seq = gridwatch.state.seq; gridwatch.dropLive(); return seq; })()"
        )
        assert seen > 0
        fire(service, "tilt-2", DISTRICT.grids[40].code, wall_ms() - 1000)
        await expect(command.locator("#case-list .case-row")).to_have_count(2, timeout=LIVE_MS)
        await expect(command.locator("#live-status")).to_have_attribute("data-mode", "live", timeout=LIVE_MS * 2)
        assert len(sockets) >= 1
        assert f"since={seen}&hub=" in sockets[-1], sockets

        service.registry.register_gateway("gw-east", "east", wall_ms())
        admin = await open_as(browser, base, "admin", "admin-pw")
        await admin.click('#menu [data-view="fleet"]')
        await expect(admin.locator('#fleet-table tr[data-gateway="gw-east"]')).to_be_visible()
        await expect(admin.locator('#fleet-tiles .tile[data-kpi="online_rate"] b')).to_have_text("0.0%")
        await expect(command.locator('#menu [data-view="fleet"]')).to_be_hidden()

        await command.click("#lang-toggle")
        await expect(command.locator("header h1")).to_have_text("gridwatch command center")
        await expect(command.locator('#queues .qbtn[data-queue="dispatched"] b')).to_have_text("Dispatched")


def inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    """Tell whether the box (x, y, w, h) `inner` lies within `outer`."""
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def tile_zoom(url: str) -> str:
    """Return the zoom level of a tile URL from TILE_HOST."""
    match = re.fullmatch(r"http://tiles\.test/(\d+)/\d+/\d+\.png", url)
    assert match is not None, url
    return match.group(1)


async def view_box(page: Page) -> tuple[float, float, float, float]:
    """Return the map's SVG viewBox."""
    x, y, w, h = (float(v) for v in (await page.locator("#map").get_attribute("viewBox") or "").split())
    return x, y, w, h


async def test_the_map_frames_the_callers_territory_and_draws_tiles_when_a_tile_server_is_set(tmp_path: Path) -> None:
    """A grid worker's map frames their grid; with a tile URL, XYZ tiles covering the view lie under the polygons."""
    tile_url = TILE_HOST + "/{z}/{x}/{y}.png"
    served: list[str] = []
    async with (
        cloud(tmp_path, map={"tile_url": tile_url, "tile_attribution": "© test tiles"}) as (_, base),
        chromium() as browser,
    ):
        command = await open_as(browser, base, "command", tiles=served)
        worker = await open_as(browser, base, "worker", tiles=served)
        await expect(command.locator("#map")).to_have_attribute("data-zoom", "district")
        await expect(worker.locator("#map")).to_have_attribute("data-zoom", GRID)
        await expect(worker.locator(f'#map path.scope-outline[data-code="{GRID}"]')).to_have_count(1)
        await expect(worker.locator("#map-attribution")).to_have_text("© test tiles")

        district_box, grid_box = await view_box(command), await view_box(worker)
        assert grid_box[2] < district_box[2] / 4
        bbox = await worker.locator(f'#map path.geo.grid[data-code="{GRID}"]').evaluate(
            "p => { const b = p.getBBox(); return [b.x, b.y, b.width, b.height]; }"
        )
        assert inside(tuple(bbox), grid_box)

        for page, box in ((command, district_box), (worker, grid_box)):
            images = page.locator("#tiles image.basemap-tile")
            await expect(images).not_to_have_count(0)
            rects = await images.evaluate_all(
                "els => els.map(e => [e.getAttribute('href'), +e.getAttribute('x'), +e.getAttribute('y'),"
                " +e.getAttribute('width'), +e.getAttribute('height')])"
            )
            # The tiles are one zoom level and tile the view without gaps.
            zooms = {tile_zoom(r[0]) for r in rects}
            assert len(zooms) == 1
            left, top = min(r[1] for r in rects), min(r[2] for r in rects)
            cover = (left, top, max(r[1] + r[3] for r in rects) - left, max(r[2] + r[4] for r in rects) - top)
            assert inside(box, cover)
            # The tile under the device's point (in the worker's grid) is among them, as Web Mercator says.
            z = int(zooms.pop())
            x, y = tile_of(113.5312, 34.7981, z)
            assert f"{TILE_HOST}/{z}/{x}/{y}.png" in {r[0] for r in rects}
        worker_z = int((await worker.locator("#tiles image").first.get_attribute("data-z")) or 0)
        command_z = int((await command.locator("#tiles image").first.get_attribute("data-z")) or 0)
        assert worker_z > command_z
        await eventually(lambda: bool(served), 5, what="the browser to fetch tiles")
        assert all(url.startswith(TILE_HOST) for url in served)
