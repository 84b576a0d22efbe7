"""`gridwatch replay`: captures of every kind through their profiles, one JSON object per reading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".." / "shared" / "corpus"
GOLDEN = ROOT / "tests" / "golden"
KEYS = {"device", "quantity", "value", "unit", "ts", "quality", "reason"}


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `gridwatch replay` with `args` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "gridwatch", "replay", *args], capture_output=True, text=True, timeout=120, check=False
    )


def records(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """Parse replay's JSON lines."""
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def test_gnss_log_replays_to_readings_with_epoch_times() -> None:
    """A BeiDou receiver log becomes readings in RFC 3339 UTC; the tally goes to stderr."""
    done = replay(str(CORPUS / "gnss" / "unicore-um621.log"), "--profile", "gnss-nmea", "--device", "um621")
    assert done.returncode == 0, done.stderr
    rows = records(done)
    assert rows
    assert all(set(r) == KEYS and r["device"] == "um621" for r in rows)
    assert all(isinstance(r["ts"], str) and r["ts"].endswith("Z") for r in rows)
    beidou = [r for r in rows if r["quantity"] == "sats_in_view_beidou"]
    assert beidou
    assert max(float(str(r["value"])) for r in beidou) > 0
    first_fix = next(r for r in rows if r["quantity"] == "latitude")
    assert first_fix["ts"] == "2024-06-09T00:06:53.000Z"
    assert first_fix["value"] == pytest.approx(44.068832333, abs=1e-6)
    assert "replay unicore-um621.log with gnss-nmea:" in done.stderr
    assert "sentences=" in done.stderr


def test_hj212_frames_replay_with_station_time_in_utc() -> None:
    """HJ 212 frame lists replay; Beijing-time DataTime comes out 8 hours earlier in UTC."""
    done = replay(str(CORPUS / "hj212" / "frames.tsv"), "--profile", "hj212", "--device", "st", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    rows = records(done)
    pm = [r for r in rows if r["quantity"] in ("pm2_5", "pm10")]
    assert pm
    # guocay's CN 2011 frame: DataTime=20191012133710 (UTC+8) carries a21005-Rtd=0.00 (CO).
    assert {"quantity": "co", "value": 0.0, "ts": "2019-10-12T05:37:10.000Z"}.items() <= next(
        r for r in rows if r["quantity"] == "co"
    ).items()
    assert "frames=32" in done.stderr


@pytest.mark.parametrize(
    ("case", "capture"), [("gas-detector-modbus", "input.hex"), ("manhole-tilt-mqtt", "input.jsonl")]
)
def test_modbus_hex_and_json_lines_replay(case: str, capture: str) -> None:
    """Modbus response hex dumps and MQTT JSON lines replay through their profiles."""
    done = replay(str(GOLDEN / case / capture), "--profile", case, "--format", "table")
    assert done.returncode == 0, done.stderr
    assert "quantity" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope.log", "--profile", "gnss-nmea"), "no such capture file"),
        ((str(CORPUS / "gnss" / "bu353s4.log"), "--profile", "no-such-profile"), "unknown profile"),
    ],
)
def test_unusable_file_or_profile_exits_2(args: tuple[str, ...], message: str) -> None:
    """A missing file or an unknown profile is the only failure: exit code 2 with a message."""
    done = replay(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_damaged_capture_still_exits_0_and_counts() -> None:
    """A capture full of garbage is not an error of the command: it exits 0 and tallies what it saw."""
    done = replay(str(CORPUS / "gnss" / "skytraq-err.log"), "--profile", "gnss-nmea")
    assert done.returncode == 0
    assert "replay skytraq-err.log" in done.stderr
