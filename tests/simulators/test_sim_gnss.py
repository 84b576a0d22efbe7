"""Tests of the GNSS simulator: NMEA 4.11 sentences over a real pty, checksums, IDs, epoch times, track."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path

import pytest

from simulators.clock import ScenarioClock
from simulators.faults import Faults, FaultSpec
from simulators.gnss import GnssReceiver, GnssSimulator, LoopTrack
from simulators.nmea_encode import checksum, sentence

START = datetime(2024, 6, 1, 23, 59, 58, tzinfo=UTC)
READ_TIMEOUT_S = 15.0


def wake(future: asyncio.Future[None]) -> None:
    """Complete `future` once; the loop calls this while the descriptor stays readable."""
    if not future.done():
        future.set_result(None)


async def read_lines(path: Path, count: int) -> list[bytes]:
    """Open `path` like a serial reader and return the first `count` complete CRLF lines."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    buffer = b""
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            while buffer.count(b"\r\n") < count:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, wake, ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
                buffer += os.read(fd, 65536)
    finally:
        os.close(fd)
    return [line + b"\r\n" for line in buffer.split(b"\r\n")[:count]]


def valid_checksum(line: bytes) -> bool:
    """Check `$body*HH\\r\\n` by XOR, independently of the simulator's encoder."""
    text = line.decode("ascii").rstrip("\r\n")
    if not text.startswith("$") or text[-3] != "*":
        return False
    return reduce(lambda a, b: a ^ b, text[1:-3].encode(), 0) == int(text[-2:], 16)


def nmea_time(field: str) -> float:
    """Seconds of day from an hhmmss.ss field."""
    return int(field[0:2]) * 3600 + int(field[2:4]) * 60 + float(field[4:])


def test_checksum_matches_a_published_sentence() -> None:
    """The encoder's checksum reproduces a real receiver's sentence from the gpsd corpus style."""
    body = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert checksum(body) == 0x47
    assert sentence("GPGGA", body.split(",")[1:]) == f"${body}*47\r\n".encode()


@pytest.mark.integration
async def test_sentences_over_a_pty_have_valid_checksums_and_4_11_ids(tmp_path: Path) -> None:
    """Every sentence read from the pty passes its checksum; GSA ends in System ID 1/4, GSV in Signal ID."""
    clock = ScenarioClock.from_datetime(START, speed=20.0)
    async with GnssSimulator(tmp_path / "gnss0", rate_hz=1, clock=clock) as sim:
        lines = await read_lines(sim.path, 60)
    assert all(valid_checksum(line) for line in lines)
    texts = [line.decode().rstrip("\r\n").split("*")[0] for line in lines]
    talkers = {t[1:6] for t in texts}
    assert {"GNRMC", "GNGGA", "GNGSA", "GPGSV", "GBGSV", "GNZDA"} <= talkers
    gsa_systems = {t.split(",")[-1] for t in texts if t[3:6] == "GSA"}
    assert gsa_systems == {"1", "4"}
    for text in texts:
        fields = text.split(",")
        if fields[0] in ("$GPGSV", "$GBGSV"):
            # total, number, in view, 4 fields per satellite, then the Signal ID (1 = L1 C/A or B1I).
            assert (len(fields) - 4) % 4 == 1
            assert fields[-1] == "1"
        if fields[0] == "$GNRMC":
            assert fields[12:14] == ["A", "V"]  # 4.10 mode indicator, 4.11 navigational status


@pytest.mark.integration
@pytest.mark.parametrize("rate_hz", [1, 5, 10])
async def test_epoch_times_advance_at_the_configured_rate(tmp_path: Path, rate_hz: int) -> None:
    """RMC times step by exactly 1/rate s (NMEA times, not wall-clock), across midnight and the date."""
    clock = ScenarioClock.from_datetime(START, speed=4.0)
    receiver = GnssReceiver(sentences=("RMC", "GGA", "ZDA"))
    async with GnssSimulator(tmp_path / "gnss0", rate_hz=rate_hz, clock=clock, receiver=receiver) as sim:
        lines = await read_lines(sim.path, 3 * 3 * rate_hz)
    rmc = [line.decode().split(",") for line in lines if line.startswith(b"$GNRMC")]
    times = [nmea_time(f[1]) for f in rmc]
    steps = [(b - a) % 86400 for a, b in itertools.pairwise(times)]
    assert len(steps) >= 2 * rate_hz
    assert all(math.isclose(s, 1 / rate_hz, abs_tol=1e-6) for s in steps)
    gga_times = [line.decode().split(",")[1] for line in lines if line.startswith(b"$GNGGA")]
    assert set(gga_times) <= {f[1] for f in rmc}
    dates = {f[9] for f in rmc}
    assert dates <= {"010624", "020624"}


def test_track_loops_around_its_centre_at_its_speed() -> None:
    """Positions stay on the circle around 34.80 N 113.53 E and cover speed·dt of arc per second."""
    track = LoopTrack(speed_mps=10.0, radius_m=200.0)
    for t in range(0, 200, 7):
        pos = track.at(float(t))
        north = math.radians(pos.latitude - 34.80) * 6_371_000
        east = math.radians(pos.longitude - 113.53) * 6_371_000 * math.cos(math.radians(34.80))
        assert math.isclose(math.hypot(north, east), 200.0, rel_tol=1e-3)
        assert 0 <= pos.course_deg < 360
    a, b = track.at(0.0), track.at(1.0)
    step = math.hypot(
        math.radians(b.latitude - a.latitude) * 6_371_000,
        math.radians(b.longitude - a.longitude) * 6_371_000 * math.cos(math.radians(34.80)),
    )
    assert math.isclose(step, 10.0, rel_tol=1e-3)
    # Counter-clockwise from due east: heading north first.
    assert a.course_deg == pytest.approx(0.0, abs=1e-6)


def test_epoch_is_deterministic_and_positions_round_trip_through_ddmm() -> None:
    """The same t gives the same bytes, and GGA's ddmm.mmmmm fields decode back to the track position."""
    receiver = GnssReceiver(sentences=("GGA",))
    when = START + timedelta(seconds=3)
    first = receiver.epoch(3.0, when)
    assert first == receiver.epoch(3.0, when)
    fields = first[0].decode().split(",")
    lat = int(fields[2][:2]) + float(fields[2][2:]) / 60
    lon = int(fields[4][:3]) + float(fields[4][3:]) / 60
    pos = receiver.track.at(3.0)
    assert lat == pytest.approx(pos.latitude, abs=1e-7)
    assert lon == pytest.approx(pos.longitude, abs=1e-7)


def test_gsv_is_sent_once_a_second_at_high_rates() -> None:
    """At 10 Hz the satellite view goes out on whole seconds only, like real receivers."""
    receiver = GnssReceiver()
    with_gsv = [t for t in (0.0, 0.1, 0.5, 0.9, 1.0) if any(b"GSV" in s for s in receiver.epoch(t, START))]
    assert with_gsv == [0.0, 1.0]


@pytest.mark.integration
async def test_checksum_faults_reach_the_reader_at_their_rate(tmp_path: Path) -> None:
    """With checksum=0.2 about a fifth of the sentences read from the pty fail their checksum."""
    clock = ScenarioClock.from_datetime(START, speed=50.0)
    faults = Faults(FaultSpec(checksum=0.2), random.Random(7))
    async with GnssSimulator(tmp_path / "gnss0", rate_hz=1, clock=clock, faults=faults) as sim:
        lines = await read_lines(sim.path, 400)
    bad = sum(not valid_checksum(line) for line in lines)
    assert 0.12 < bad / len(lines) < 0.28


@pytest.mark.integration
async def test_unplug_fault_ends_the_stream_and_the_same_path_serves_a_new_pty(tmp_path: Path) -> None:
    """An unplug fault gives the reader EOF or EIO; reopening the same symlink later yields NMEA again."""
    clock = ScenarioClock.from_datetime(START, speed=10.0)
    faults = Faults(FaultSpec(unplug=0.2, unplug_for=2.0), random.Random(11))
    loop = asyncio.get_running_loop()
    endings = 0
    lines: list[bytes] = []
    after_replug: list[bytes] = []
    async with GnssSimulator(tmp_path / "gnss0", rate_hz=2, clock=clock, faults=faults) as sim:
        async with asyncio.timeout(20):
            while not after_replug:
                try:
                    fd = os.open(sim.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
                except FileNotFoundError:
                    await asyncio.sleep(0.01)  # unplugged: poll for the replug
                    continue
                try:
                    while True:
                        ready: asyncio.Future[None] = loop.create_future()
                        loop.add_reader(fd, wake, ready)
                        try:
                            await ready
                        finally:
                            loop.remove_reader(fd)
                        try:
                            data = os.read(fd, 65536)
                        except OSError:
                            data = b""
                        if not data:
                            endings += 1
                            break
                        lines.extend(data.split(b"\r\n"))
                        if endings:
                            after_replug.append(data)
                finally:
                    os.close(fd)
    assert sim.port.stats.unplugs >= 1
    assert sim.port.stats.replugs >= 1
    whole = [line + b"\r\n" for line in lines if line.startswith(b"$") and b"*" in line[-3:]]
    assert whole
    assert all(valid_checksum(line) for line in whole)
