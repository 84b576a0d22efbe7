"""Tests of `gridwatch simulate`: port path first on stdout, clean exit on Ctrl-C, bad options refused."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulators.cli import simulate_app


def first_line(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> bytes:
    """Return the first stdout line of `proc`, failing after `timeout` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from the simulator"
    return proc.stdout.readline()


def read_line_from(path: Path, timeout: float = 15.0) -> bytes:
    """Open a pty path and return its first CRLF line."""
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    buffer = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\r\n" not in buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no line on the pty"
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                buffer += os.read(fd, 4096)
    finally:
        os.close(fd)
    return buffer.split(b"\r\n")[0]


@pytest.mark.integration
@pytest.mark.parametrize(("command", "prefix"), [("gnss", b"$GN"), ("hj212", b"##")], ids=["gnss", "hj212"])
def test_simulator_prints_its_path_serves_it_and_exits_cleanly_on_ctrl_c(
    tmp_path: Path, command: str, prefix: bytes
) -> None:
    """The first stdout line is the link; a reader gets frames there; SIGINT exits 0 and removes the link."""
    link = tmp_path / f"{command}0"
    extra = ["--interval", "1"] if command == "hj212" else ["--rate", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.cli", command, "--link", str(link), "--seed", "1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert first_line(proc).decode().strip() == str(link)
        assert read_line_from(link).startswith(prefix)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert b"stopped:" in err
    assert not link.exists()


def test_bad_options_exit_with_status_2_and_a_message() -> None:
    """An unknown fault name or CRC mode is refused with exit status 2 and says what is wrong."""
    runner = CliRunner()
    result = runner.invoke(simulate_app, ["gnss", "--faults", "lightning=0.5"])
    assert result.exit_code == 2
    assert "lightning" in result.output
    result = runner.invoke(simulate_app, ["hj212", "--crc", "crc32"])
    assert result.exit_code == 2
    assert "--crc" in result.output
    result = runner.invoke(simulate_app, ["gnss", "--rate", "50"])
    assert result.exit_code == 2
    assert "rate_hz" in result.output
