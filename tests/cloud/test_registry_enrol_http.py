"""`gridwatch agent enroll` end to end: edge_agent.enrol over HTTP to a stdlib server calling Registry.enrol."""

from __future__ import annotations

import asyncio
import logging
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiomqtt
import pytest
import yaml

from cloud.registry import Registry, TokenError
from edge_agent.config import load_config
from edge_agent.enrol import EnrolError, enrol
from edge_agent.uplink import CheckedClient
from gateway import topics
from gateway.enrolment import (
    ENROL_PATH,
    ERROR_STATUS,
    EnrolFailure,
    EnrolmentWireError,
    decode_request,
    encode,
)
from tests.cloud.registry_rig import (
    HOUR_MS,
    T0,
    broker_registry,
    gnss_device,
    make_registry,
    seed_bundle,
    wait_connectable,
)
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration


class EnrolServer(ThreadingHTTPServer):
    """The enrol endpoint as the API will serve it: JSON in, Registry.enrol, JSON out; time injected."""

    def __init__(self, registry: Registry, now_ms: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.registry = registry
        self.now_ms = now_ms

    @property
    def url(self) -> str:
        """The base URL of the server."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: EnrolServer

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path != ENROL_PATH:
            self._send(404, b"{}")
            return
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            request = decode_request(data)
            creds = self.server.registry.enrol(
                request.token, self.server.now_ms, agent_version=request.agent_version, hostname=request.hostname
            )
        except EnrolmentWireError as exc:
            self._send(ERROR_STATUS["invalid_request"], encode(EnrolFailure(reason="invalid_request", detail=str(exc))))
        except TokenError as exc:
            self._send(ERROR_STATUS[exc.reason], encode(EnrolFailure(reason=exc.reason, detail=str(exc))))
        else:
            self._send(200, encode(creds.response()))

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def serve() -> Iterator[list[EnrolServer]]:
    """Collect the enrol servers a test starts and shut them down after it."""
    servers: list[EnrolServer] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _start(servers: list[EnrolServer], registry: Registry, now_ms: int) -> EnrolServer:
    server = EnrolServer(registry, now_ms)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return server


async def test_enroll_writes_a_private_config_that_connects_to_the_real_broker(
    tmp_path: Path, serve: list[EnrolServer], caplog: pytest.LogCaptureFixture
) -> None:
    """The token buys a 0600 agent.yaml (v1 behind a pointer) whose uplink logs in to mosquitto."""
    caplog.set_level(logging.DEBUG)
    async with Mosquitto(tmp_path / "m", auth=True, users={"ingest": "pw-ingest"}) as broker:
        registry = broker_registry(tmp_path, broker)
        _, token = registry.register_gateway("gw-a", "site", T0)
        registry.bind_device(gnss_device("gnss-1", "gw-a"), T0)
        seed_bundle(registry, "gw-a", T0)
        server = _start(serve, registry, T0 + 1)

        pointer = await asyncio.to_thread(enrol, token.token, server.url, tmp_path / "etc", hostname="box-1")

        assert pointer.is_symlink()
        assert pointer.resolve().name == "agent.v1.yaml"
        assert stat.S_IMODE(pointer.resolve().stat().st_mode) == 0o600
        config, specs = load_config(pointer)
        assert config.gateway.id == "gw-a"
        assert config.config_version == "1"
        assert [s.device.id for s in specs] == ["gnss-1"]
        assert config.uplink.password is not None
        password = config.uplink.password.get_secret_value()
        assert registry.check_password("gw-a", password)
        assert registry.gateway("gw-a").hostname == "box-1"
        assert password not in caplog.text
        assert password not in repr(config)
        await wait_connectable(broker, "gw-a", password)
        async with CheckedClient(
            config.uplink.host,
            config.uplink.port,
            username=config.uplink.username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=5,
        ) as client:
            await client.publish_checked(topics.status("gw-a"), b"online", retain=False)


def test_used_expired_and_unknown_tokens_are_refused_over_http(tmp_path: Path, serve: list[EnrolServer]) -> None:
    """The agent gets the cloud's reason: token_used on reuse, token_expired late, token_unknown otherwise."""
    registry = make_registry(tmp_path)
    _, token = registry.register_gateway("gw-a", "site", T0)
    registry.bind_device(gnss_device("gnss-1", "gw-a"), T0)
    seed_bundle(registry, "gw-a", T0)
    _, late = registry.register_gateway("gw-b", "site", T0)
    server = _start(serve, registry, T0 + HOUR_MS)
    enrol(token.token, server.url, tmp_path / "a")
    cases = [(token.token, "token_used"), ("Z" * 43, "token_unknown")]
    for value, reason in cases:
        with pytest.raises(EnrolError) as refused:
            enrol(value, server.url, tmp_path / "b")
        assert refused.value.reason == reason
    server.now_ms = T0 + 25 * HOUR_MS
    with pytest.raises(EnrolError) as expired:
        enrol(late.token, server.url, tmp_path / "c")
    assert expired.value.reason == "token_expired"
    assert not (tmp_path / "b").exists()
    assert not (tmp_path / "c").exists()


def test_unreachable_cloud_and_invalid_first_bundle_are_reported(tmp_path: Path, serve: list[EnrolServer]) -> None:
    """A closed port gives reason unreachable; a bundle without devices keeps the credentials but says invalid."""
    registry = make_registry(tmp_path)
    _, token = registry.register_gateway("gw-a", "site", T0)
    server = _start(serve, registry, T0)
    closed = EnrolServer(registry, T0)
    url = closed.url
    closed.server_close()
    with pytest.raises(EnrolError) as unreachable:
        enrol(token.token, url, tmp_path / "a", timeout_s=5)
    assert unreachable.value.reason == "unreachable"
    with pytest.raises(EnrolError) as invalid:
        enrol(token.token, server.url, tmp_path / "b")
    assert invalid.value.reason == "invalid_bundle"
    saved = yaml.safe_load((tmp_path / "b" / "agent.yaml").read_text(encoding="utf-8"))
    assert registry.check_password("gw-a", saved["uplink"]["password"])
