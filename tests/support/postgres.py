"""A real PostgreSQL for tests: Debian's server binaries, a temp data dir, a free loopback port."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import psycopg

from gridwatch.broker import free_port


def _bin(name: str) -> str:
    """Return the newest installed PostgreSQL server binary `name`."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError(f"PostgreSQL {name} not found: install Debian's postgresql package (make test does)")
    return found[-1]


def _as_postgres() -> tuple[list[str], int | None]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user when we are root."""
    if os.getuid() != 0:
        return [], None
    return ["runuser", "-u", "postgres", "--"], pwd.getpwnam("postgres").pw_uid


class Postgres:
    """One server; `database()` hands out a fresh empty database URL per test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.data = root / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def start(self) -> None:
        """initdb (trust auth, loopback only), start the server and wait until it accepts connections."""
        prefix, uid = _as_postgres()
        self.root.mkdir(parents=True, exist_ok=True)
        if uid is not None:
            # The server's user must reach its directory through our private temp dir.
            self.root.parent.chmod(0o755)
            os.chown(self.root, uid, -1)
        subprocess.run(
            [*prefix, _bin("initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "--no-sync"],
            check=False,
            capture_output=True,
            timeout=120,
        ).check_returncode()
        self._log = log = (self.root / "server.log").open("ab")
        self._proc = subprocess.Popen(
            [
                *prefix,
                _bin("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.root / "server.log").read_text(errors="replace")) from None
                time.sleep(0.1)

    def url(self, database: str) -> str:
        """Return the URL of one database on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create a fresh empty database and return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown and reap."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(root: Path) -> Iterator[Postgres]:
    """Start a server under `root` for the duration of the block."""
    server = Postgres(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
