"""The cloud as maintainers and gateways meet it: register, enrol, ingest, fleet liveness, bundles, revoke."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
import uvicorn
import yaml

from cloud.api import create_app
from cloud.ingest import IngestSettings
from cloud.service import CloudService
from cloud.settings import CloudSettings
from gridwatch.broker import Mosquitto, free_port
from tests.agent.agent_rig import reading_payload, start_agent, stop_agent
from tests.support.waiting import eventually, eventually_async

pytestmark = pytest.mark.integration

GW = "gw-e2e"


@contextlib.asynccontextmanager
async def cloud(tmp_path: Path, upstream: Mosquitto) -> AsyncIterator[tuple[CloudService, httpx.AsyncClient]]:
    """Run the real cloud (API + ingest) on a free port, managing the upstream broker's accounts."""
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(str(upstream.pid), encoding="utf-8")
    settings = CloudSettings.model_validate(
        {
            "data_dir": str(tmp_path / "cloud"),
            "port": free_port(),
            "ingest": IngestSettings(
                host=upstream.host, port=upstream.port, username="ingest", password="pw-ingest", client_id="ingest-e2e"
            ),
            "gateway_broker": {"host": upstream.host, "port": upstream.port},
            "broker_admin": {"password_file": str(upstream.files.password_file), "pid_file": str(pid_file)},
            "admin_password": "admin-pw",
            "liveness": {"heartbeat_window_s": 3, "device_window_s": 30},
        }
    )
    service = CloudService(settings)
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=settings.port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="the API to listen")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as client:
            login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": "admin-pw"})
            login.raise_for_status()
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            yield service, client
    finally:
        server.should_exit = True
        await task
        service.close()


async def fleet_row(client: httpx.AsyncClient) -> dict[str, Any]:
    """Return the fleet view's row of the test gateway."""
    rows = (await client.get("/api/v1/fleet")).json()
    return next(r for r in rows if r["gateway"] == GW)


async def until(client: httpx.AsyncClient, check: Any, what: str, within_s: float = 20) -> dict[str, Any]:
    """Poll the fleet view until `check(row)` holds; return the row."""
    latest: dict[str, Any] = {}

    async def holds() -> bool:
        nonlocal latest
        latest = await fleet_row(client)
        return bool(check(latest))

    await eventually_async(holds, within_s, what=f"{what} (last row: {latest})")
    return latest


async def run(*args: str) -> tuple[int, str]:
    """Run a gridwatch command without blocking the event loop (the API under test runs on it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridwatch", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


def document(
    field: Mosquitto, upstream: Mosquitto, *, extra_ports: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The gateway's configuration as a maintainer pushes it: one MQTT sensor on the field broker."""
    return {
        "gateway": {"id": GW},
        "uplink": {"host": upstream.host, "port": upstream.port, "heartbeat_s": 1, "batch": {"max_age_s": 0.2}},
        "local_broker": {"host": field.host, "port": field.port},
        "ports": extra_ports or [],
        "devices": [{"id": "TH-1", "profile": "temp-humidity-mqtt", "topic": "sensors/TH-1/data"}],
    }


async def test_gateway_life_through_the_cloud(tmp_path: Path) -> None:
    """Register → enrol → readings stored and queryable → offline/online tracked → bad bundle rolled back → revoked."""
    async with (
        Mosquitto(tmp_path / "field") as field,
        Mosquitto(tmp_path / "upstream", auth=True, users={"ingest": "pw-ingest"}) as upstream,
        cloud(tmp_path, upstream) as (_, api),
    ):
        registered = await api.post("/api/v1/gateways", json={"name": GW, "site": "office 1"})
        assert registered.status_code == 201, registered.text
        token = registered.json()["token"]
        bound = await api.put("/api/v1/devices/TH-1", json={"gateway": GW, "profile": "temp-humidity-mqtt"})
        assert bound.status_code == 200, bound.text
        pushed = await api.post(f"/api/v1/gateways/{GW}/config", json={"document": document(field, upstream)})
        assert pushed.json()["version"] == 1
        out = tmp_path / "gateway"
        enrol = ("agent", "enroll", token, "--cloud", str(api.base_url), "--out")
        code, stderr = await run(*enrol, str(out))
        assert code == 0, stderr
        code, stderr = await run(*enrol, str(tmp_path / "again"))
        assert code == 1
        assert "already used" in stderr
        config = out / "agent.yaml"
        password = yaml.safe_load(config.read_text(encoding="utf-8"))["uplink"]["password"]

        agent = await start_agent(config)
        try:
            await until(api, lambda r: r["link"] == "online" and r["bundle_ack"] == "applied", "online, v1 applied")
            t0 = datetime.now(tz=UTC).timestamp()
            async with aiomqtt.Client(field.host, field.port) as sensor:
                for i in range(5):
                    await sensor.publish("sensors/TH-1/data", reading_payload("TH-1", t0 + i, 21.0 + i, 50.0), qos=1)
            params = {
                "device": "TH-1",
                "quantity": "temperature",
                "start_ms": int(t0 * 1000) - 1,
                "end_ms": int(t0 * 1000) + 10_000,
            }

            async def five_points() -> bool:
                return len((await api.get("/api/v1/series", params=params)).json()["points"]) >= 5

            await eventually_async(five_points, 20, what="five stored points")
            hourly = (await api.get("/api/v1/series", params={**params, "step_ms": 3_600_000})).json()["points"]
            assert sum(p["count"] for p in hourly) == 5
            assert abs(sum(p["mean"] * p["count"] for p in hourly) / 5 - 23.0) < 1e-9

            await stop_agent(agent, signal.SIGKILL)
            await until(api, lambda r: r["link"] == "offline", "offline after the kill", within_s=10)
            agent = await start_agent(config)
            await until(api, lambda r: r["link"] == "online", "online after the restart")

            bad = document(field, upstream, extra_ports=[{"name": "gone", "path": str(tmp_path / "no-such-tty")}])
            pushed = await api.post(f"/api/v1/gateways/{GW}/config", json={"document": bad})
            assert pushed.json()["version"] == 2
            row = await until(api, lambda r: r["bundle_ack"] == "rolled_back", "the bad bundle rolled back")
            assert "no-such-tty" in (row["bundle_error"] or "")
            assert row["link"] == "online"

            metrics = (await api.get("/metrics")).text
            assert "gridwatch_ingest_readings_total" in metrics
            assert 'gridwatch_series_readings_total{outcome="written"}' in metrics
            assert (await api.get("/healthz")).json()["status"] == "ok"
            assert "/api/v1/fleet" in (await api.get("/openapi.json")).json()["paths"]

            revoked = await api.post(f"/api/v1/gateways/{GW}/revoke")
            assert revoked.json()["state"] == "revoked"
            await until(api, lambda r: r["link"] == "offline", "offline after the revoke", within_s=15)
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(upstream.host, upstream.port, username=GW, password=password):
                    pass
        finally:
            await stop_agent(agent)


async def test_api_refuses_without_a_valid_token(tmp_path: Path) -> None:
    """No token, a forged token or a wrong password get 401; the enrol endpoint refuses unknown tokens."""
    async with (
        Mosquitto(tmp_path / "upstream", auth=True, users={"ingest": "pw-ingest"}) as upstream,
        cloud(tmp_path, upstream) as (_, api),
        httpx.AsyncClient(base_url=api.base_url) as anonymous,
    ):
        assert (await anonymous.get("/api/v1/fleet")).status_code == 401
        forged = await anonymous.get("/api/v1/fleet", headers={"Authorization": "Bearer forged"})
        assert forged.status_code == 401
        wrong = await anonymous.post("/api/v1/auth/token", data={"username": "admin", "password": "nope"})
        assert wrong.status_code == 401
        unknown = await anonymous.post("/api/v1/enrol", json={"token": "x" * 43})
        assert unknown.status_code == 404
        assert unknown.json()["reason"] == "token_unknown"
