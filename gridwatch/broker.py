"""A mosquitto process from our shipped config: a data dir and port in; start, kill, restart it."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from gateway import broker_auth

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MosquittoError(Exception):
    """The broker did not start or stop as expected."""


class Mosquitto:
    """Start, kill and restart one mosquitto on a fixed port; `async with` starts and finally stops it."""

    host = "127.0.0.1"

    def __init__(
        self,
        data_dir: Path,
        *,
        auth: bool = False,
        users: dict[str, str] | None = None,
        cloud_users: tuple[str, ...] = broker_auth.DEFAULT_CLOUD_USERS,
        port: int | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.auth = auth
        self.files = broker_auth.render_config(
            data_dir,
            self.port,
            auth=auth,
            cloud_users=cloud_users,
            run_as=pwd.getpwuid(os.getuid()).pw_name,
        )
        self.log_path = self.files.data_dir / "mosquitto.log"
        self._start_timeout_s = start_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        for name, password in (users or {}).items():
            self.add_user(name, password)

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int:
        """The broker's process id (raises if not running)."""
        if self._proc is None or self._proc.returncode is not None:
            raise MosquittoError("mosquitto is not running")
        return self._proc.pid

    def add_user(self, username: str, password: str) -> None:
        """Add a user to the password file and, if the broker runs, reload it."""
        if self.files.password_file is None:
            raise MosquittoError("broker was created with auth=False")
        broker_auth.add_user(self.files.password_file, username, password)
        if self.running:
            broker_auth.reload(self.pid)

    def log(self) -> str:
        """Return what the broker logged so far (for assertion messages)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        """Start the broker on its port and return once it accepts TCP connections."""
        if self.running:
            raise MosquittoError("mosquitto already running")
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                MOSQUITTO,
                "-c",
                str(self.files.config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own session: a Ctrl-C in the terminal reaches us, and we stop the broker in order.
                start_new_session=True,
            )
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            if self._proc.returncode is not None:
                raise MosquittoError(f"mosquitto exited with {self._proc.returncode}:\n{self.log()}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if time.monotonic() > deadline:
                    await self.stop(signal.SIGKILL)
                    raise MosquittoError(f"mosquitto not listening on {self.port}:\n{self.log()}") from None
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
