"""MQTT brokers as child processes: a data dir and port in; start, kill, restart mosquitto or embedded amqtt.

`Mosquitto` runs the Debian binary from our shipped config (MQTT 5, `$share`, ACLs). `Amqtt` runs the
pure-Python amqtt broker in a child Python process: the demo's fallback when mosquitto cannot be
installed or started. It speaks MQTT 3.1.1 only, has no shared subscriptions, keeps sessions in memory
only and checks no password, so it only ever binds loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self

from gateway import broker_auth

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


# Below Linux's ephemeral range (32768-60999): a port handed out here is never taken meanwhile as the
# local end of some outgoing connection, the race that asking the kernel for port 0 leaves open.
FREE_PORTS: Final = range(20_000, 32_768)
_handed_out: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out."""
    for _ in range(1000):
        port = random.choice(FREE_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError(f"no free TCP port in {FREE_PORTS.start}-{FREE_PORTS.stop - 1}")


class BrokerError(Exception):
    """The broker did not start or stop as expected."""


class MosquittoError(BrokerError):
    """mosquitto did not start or stop as expected."""


class AmqttError(BrokerError):
    """The embedded amqtt broker did not start or stop as expected."""


class BrokerProcess:
    """One broker child process on a fixed loopback port; `async with` starts and finally stops it."""

    host = "127.0.0.1"
    name: ClassVar[str] = "broker"
    error: ClassVar[type[BrokerError]] = BrokerError
    # What clients of this broker may use: MQTT 5 (reason codes, session expiry) and `$share/` groups.
    mqtt5: ClassVar[bool] = True
    shared_subscriptions: ClassVar[bool] = True

    def __init__(self, data_dir: Path, port: int | None, start_timeout_s: float) -> None:
        self.port = port if port is not None else free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / f"{self.name}.log"
        self._start_timeout_s = start_timeout_s
        self._proc: asyncio.subprocess.Process | None = None

    def _argv(self) -> list[str]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int:
        """The broker's process id (raises if not running)."""
        if self._proc is None or self._proc.returncode is not None:
            raise self.error(f"{self.name} is not running")
        return self._proc.pid

    def log(self) -> str:
        """Return what the broker logged so far (for assertion messages)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        """Start the broker on its port and return once it accepts TCP connections."""
        if self.running:
            raise self.error(f"{self.name} already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = self._argv()
        with self.log_path.open("ab") as log:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    # Its own session: a Ctrl-C in the terminal reaches us, and we stop the broker in order.
                    start_new_session=True,
                )
            except OSError as exc:
                raise self.error(f"cannot run {argv[0]}: {exc}") from exc
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            if self._proc.returncode is not None:
                raise self.error(f"{self.name} exited with {self._proc.returncode}:\n{self.log()}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if time.monotonic() > deadline:
                    await self.stop(signal.SIGKILL)
                    raise self.error(f"{self.name} not listening on {self.port}:\n{self.log()}") from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the broker with `sig` (SIGTERM saves persistence, SIGKILL simulates a crash) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the broker with `sig` and start it again on the same port."""
        await self.stop(sig)
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class Mosquitto(BrokerProcess):
    """Start, kill and restart one mosquitto on a fixed port; `async with` starts and finally stops it."""

    name = "mosquitto"
    error = MosquittoError

    def __init__(
        self,
        data_dir: Path,
        *,
        auth: bool = False,
        users: dict[str, str] | None = None,
        cloud_users: tuple[str, ...] = broker_auth.DEFAULT_CLOUD_USERS,
        port: int | None = None,
        start_timeout_s: float = 10.0,
        binary: str = MOSQUITTO,
    ) -> None:
        super().__init__(data_dir, port, start_timeout_s)
        self.binary = binary
        self.auth = auth
        self.files = broker_auth.render_config(
            data_dir,
            self.port,
            auth=auth,
            cloud_users=cloud_users,
            run_as=pwd.getpwuid(os.getuid()).pw_name,
        )
        self.log_path = self.files.data_dir / "mosquitto.log"
        for name, password in (users or {}).items():
            self.add_user(name, password)

    def _argv(self) -> list[str]:
        return [self.binary, "-c", str(self.files.config)]

    def add_user(self, username: str, password: str) -> None:
        """Add a user to the password file and, if the broker runs, reload it."""
        if self.files.password_file is None:
            raise MosquittoError("broker was created with auth=False")
        broker_auth.add_user(self.files.password_file, username, password)
        if self.running:
            broker_auth.reload(self.pid)


# The child's program: serve until SIGTERM/SIGINT, then shut down in order (sessions are in memory only).
_AMQTT_MAIN = (
    "import sys; from gridwatch.broker import serve_amqtt; "
    "serve_amqtt(sys.argv[1], int(sys.argv[2]), anonymous=sys.argv[3] == '1')"
)


class Amqtt(BrokerProcess):
    """Start, kill and restart the embedded amqtt broker (MQTT 3.1.1, no `$share`, no passwords) on loopback.

    With `anonymous` (the default) every client is let in. Without it a client must give a username (any
    password passes): amqtt treats every client of an anonymous broker as anonymous and neither keeps
    its session nor queues QoS 1 messages for it while it is away, which a persistent ingest session needs.
    """

    name = "amqtt"
    error = AmqttError
    mqtt5 = False
    shared_subscriptions = False

    def __init__(
        self, data_dir: Path, *, anonymous: bool = True, port: int | None = None, start_timeout_s: float = 20.0
    ) -> None:
        super().__init__(data_dir, port, start_timeout_s)
        self.anonymous = anonymous

    def _argv(self) -> list[str]:
        return [sys.executable, "-c", _AMQTT_MAIN, self.host, str(self.port), "1" if self.anonymous else "0"]


def amqtt_config(host: str, port: int, anonymous: bool) -> dict[str, Any]:
    """Return the amqtt broker configuration: one TCP listener; every client, or every client with a username."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Only the auth plugin: no $SYS publishing, no per-packet logging plugins (they cost CPU).
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": anonymous}},
    }


def serve_amqtt(host: str, port: int, anonymous: bool = True) -> None:
    """Run an amqtt broker on host:port until SIGTERM or SIGINT (the child process of `Amqtt`)."""
    import logging

    from amqtt.broker import Broker  # type: ignore[import-untyped]

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def serve() -> None:
        broker = Broker(amqtt_config(host, port, anonymous))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await broker.start()
        parent = os.getppid()
        # A parent killed without a chance to stop us (SIGKILL, a timeout) must not leave a broker behind.
        while not stop.is_set() and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        await broker.shutdown()

    asyncio.run(serve())
