"""A live-stream rig: a real CloudService behind a real uvicorn on a free port, users, and WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from cloud.api import create_app
from cloud.grid import default_district
from cloud.service import CloudService
from cloud.settings import CloudSettings
from gateway.alerts import AlertEvent, AlertState, Location
from gridwatch.broker import free_port
from tests.support.waiting import eventually

DISTRICT: Final = default_district()
GRID: Final = DISTRICT.grids[0].code
FAR_GRID: Final = DISTRICT.grids[-1].code
PASSWORD: Final = "password-1"
# username -> (role, scope)
USERS: Final = {
    "center": ("shift_lead", DISTRICT.code),
    "worker": ("grid_worker", GRID),
    "far": ("grid_worker", FAR_GRID),
    "cg": ("dept_handler", "CGJ"),
    "ops": ("maintenance", DISTRICT.code),
}


class Cloud:
    """One running cloud: its service, base URL and the users' bearer tokens."""

    def __init__(self, service: CloudService, port: int) -> None:
        self.service = service
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.tokens: dict[str, str] = {}

    def ws_url(self, user: str, **params: Any) -> str:
        """The live WebSocket URL of `user` with query `params`."""
        query = "&".join(f"{k}={v}" for k, v in {"token": self.tokens[user], **params}.items())
        return f"ws://127.0.0.1:{self.port}/api/v1/live?{query}"

    @contextlib.asynccontextmanager
    async def live(self, user: str, **params: Any) -> AsyncIterator[ClientConnection]:
        """Open `user`'s live WebSocket."""
        async with connect(self.ws_url(user, **params), max_size=None) as ws:
            yield ws


async def receive(ws: ClientConnection, within_s: float = 2.0) -> dict[str, Any]:
    """Return the next live message, failing after `within_s`."""
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), within_s))
    return message


def settings_for(tmp_path: Path, name: str, **extra: Any) -> CloudSettings:
    """Settings of one cloud process with its own data dir; `extra` overrides (broker, shared database)."""
    doc: dict[str, Any] = {
        "data_dir": str(tmp_path / name),
        "port": free_port(),
        "ingest_workers": 0,
        "admin_password": "admin-pw",
    }
    return CloudSettings.model_validate({**doc, **extra})


@contextlib.asynccontextmanager
async def cloud(settings: CloudSettings, *, create_users: bool = True) -> AsyncIterator[Cloud]:
    """Run the service and the API on `settings.port` (background tasks on); log the USERS in."""
    service = CloudService(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service), host="127.0.0.1", port=settings.port, log_level="warning", ws="websockets-sansio"
        )
    )
    task = asyncio.create_task(server.serve())
    rig = Cloud(service, settings.port)
    try:
        await eventually(lambda: server.started, what="the API to listen")
        async with httpx.AsyncClient(base_url=rig.url, timeout=30) as client:
            rig.tokens["admin"] = await token(client, "admin", "admin-pw")
            headers = {"Authorization": f"Bearer {rig.tokens['admin']}"}
            for name, (role, scope) in USERS.items():
                if create_users:
                    made = await client.post(
                        "/api/v1/users",
                        json={"username": name, "password": PASSWORD, "role": role, "scope": scope},
                        headers=headers,
                    )
                    assert made.status_code == 201, made.text
                rig.tokens[name] = await token(client, name, PASSWORD)
        yield rig
    finally:
        server.should_exit = True
        await task
        service.close()


async def token(client: httpx.AsyncClient, user: str, password: str) -> str:
    """Log `user` in; return its bearer token."""
    got = await client.post("/api/v1/auth/token", data={"username": user, "password": password})
    got.raise_for_status()
    value: str = got.json()["access_token"]
    return value


def alert(device: str, ts: int, *, grid: str = GRID, rule: str = "cover_tilted") -> AlertEvent:
    """A firing alert of a device in `grid`."""
    return AlertEvent("gw-1", device, rule, AlertState.FIRING, 1, ts, value=30.0, location=Location(grid=grid))


async def fire(service: CloudService, *alerts: AlertEvent) -> None:
    """Hand alerts to the engine from a worker thread, as the ingest writer thread does."""
    await asyncio.to_thread(service.incidents.handle_batch, [("gw-1", list(alerts))])
