"""A real VictoriaMetrics for tests and benches: a temp data dir and a free loopback port in, a base URL out.

Needs the Debian package `victoria-metrics` (binary /usr/bin/victoria-metrics). Started with
`-dedup.minScrapeInterval=1ms` so re-written samples are dropped (the store's idempotency relies on it)
and `-search.latencyOffset=1s` so fresh samples become searchable after about a second; a brand-new series
shows up only after ~10 s unless `flush()` (/internal/force_flush) is called first.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from gridwatch.broker import free_port

VICTORIA = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
T = TypeVar("T")


class VictoriaError(Exception):
    """VictoriaMetrics did not start or stop as expected."""


def poll(probe: Callable[[], T | None], within_s: float = 15.0, what: str = "condition") -> T:
    """Return the first non-None result of `probe()`, polling every 50 ms; fail after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while (result := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within_s} s")
        time.sleep(0.05)
    return result


class VictoriaMetrics:
    """One single-node VictoriaMetrics process; `with` starts it and finally stops it."""

    host = "127.0.0.1"

    def __init__(self, data_dir: Path, *, port: int | None = None, start_timeout_s: float = 20.0) -> None:
        self.data_dir = data_dir
        self.port = port if port is not None else free_port()
        self.url = f"http://{self.host}:{self.port}"
        self.log_path = data_dir / "victoria-metrics.log"
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        """Return what the server logged so far (for assertion messages)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def _healthy(self) -> bool | None:
        if self._proc is not None and self._proc.poll() is not None:
            raise VictoriaError(f"victoria-metrics exited with {self._proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return True if response.status == 200 else None
        except (urllib.error.URLError, OSError):
            return None

    def flush(self) -> None:
        """Make everything written so far searchable now (a new series otherwise shows up after ~10 s)."""
        try:
            with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise VictoriaError(f"force_flush failed: {exc}") from exc

    def start(self) -> None:
        """Start the server and return once /health answers."""
        if self._proc is not None:
            raise VictoriaError("victoria-metrics already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    VICTORIA,
                    f"-storageDataPath={self.data_dir / 'data'}",
                    f"-httpListenAddr={self.host}:{self.port}",
                    "-retentionPeriod=100y",
                    "-dedup.minScrapeInterval=1ms",
                    "-search.latencyOffset=1s",
                    "-loggerLevel=WARN",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            poll(self._healthy, self._start_timeout_s, f"victoria-metrics /health on {self.port}")
        except AssertionError as exc:
            self.stop()
            raise VictoriaError(f"{exc}:\n{self.log()}") from exc

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
