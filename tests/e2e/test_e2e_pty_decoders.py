"""Simulator → pseudo-terminal → serial source → our decoder, end to end, checked against the simulator's truth."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device_profiles import BUNDLED_DIR, load_profile
from device_profiles.schema import NmeaRead
from edge_agent.config import PortSection
from edge_agent.decode.hj212 import Hj212Decoder
from edge_agent.decode.nmea import NmeaDecoder
from edge_agent.intake import Chunk, Intake
from edge_agent.sources.hj212 import StationStream
from edge_agent.sources.serial import RawStream, SerialSource
from gateway.aio import cancel_and_wait
from simulators.clock import ScenarioClock
from simulators.gnss import GnssSimulator, LoopTrack
from simulators.hj212 import Hj212Simulator, Hj212Station
from simulators.scenario import Constant, Scenario
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 28, 23, 59, 50, tzinfo=UTC)  # the UTC day changes during the run


def drain(intake: Intake) -> list[Chunk]:
    """Take every queued chunk without waiting."""
    chunks = []
    while intake.depth():
        chunks.append(intake._queue.get_nowait())
    return chunks


async def test_gnss_positions_over_a_pty_equal_the_simulated_track(tmp_path: Path) -> None:
    """Every decoded fix equals the simulator's track at that instant (1e-6°), across a UTC midnight."""
    clock = ScenarioClock.from_datetime(START, speed=10)
    intake = Intake()
    decoder = NmeaDecoder(NmeaRead())
    fixes: dict[int, dict[str, float]] = {}
    async with GnssSimulator(tmp_path / "gnss0", rate_hz=5, clock=clock) as sim:
        source = SerialSource(PortSection(name="gnss", path=str(sim.path)), RawStream("gnss-1", intake))
        task = asyncio.create_task(source.run())

        def enough() -> bool:
            for chunk in drain(intake):
                assert isinstance(chunk.data, bytes)
                for s in decoder.feed(chunk.data, clock.ms(0)):
                    assert s.ts_ms is not None
                    fixes.setdefault(s.ts_ms, {})[s.key] = s.value
            return sum("latitude" in f for f in fixes.values()) >= 60

        try:
            await eventually(enough, within_s=30, what="60 fixes")
        finally:
            await cancel_and_wait(task)
    track = LoopTrack()
    positions = {ts: f for ts, f in fixes.items() if "latitude" in f}
    for ts, fix in positions.items():
        truth = track.at((ts - clock.start_ms) / 1000)
        assert fix["latitude"] == pytest.approx(truth.latitude, abs=1e-6)
        assert fix["longitude"] == pytest.approx(truth.longitude, abs=1e-6)
    assert any(datetime.fromtimestamp(ts / 1000, UTC).day == 29 for ts in positions)
    assert max(f.get("sats_in_view_beidou", 0) for f in fixes.values()) > 0
    assert decoder.stats.counts["checksum"] == 0


async def test_hj212_station_over_a_pty_is_decoded_and_acknowledged(tmp_path: Path) -> None:
    """A station on a serial line: its PM2.5 arrives as sent, in UTC, and each frame asking for it is acked."""
    clock = ScenarioClock.from_datetime(START, speed=5)
    profile = load_profile(BUNDLED_DIR / "hj212.yaml")
    assert profile.read.hj212 is not None
    decoder = Hj212Decoder(profile.read.hj212)
    intake = Intake()
    station = Hj212Station(ack=True, values=Scenario("steady", {"pm2_5": Constant(42.0)}))
    async with Hj212Simulator(link=tmp_path / "hj0", rtd_interval=1, clock=clock, station=station) as sim:
        stream = StationStream({"air-1": decoder}, intake, fixed="air-1")
        source = SerialSource(PortSection(name="hj", path=str(sim.path)), stream)
        stored: list[Chunk] = []

        async def store() -> None:
            while True:
                for chunk in await intake.take(16):
                    stored.append(chunk)
                    if chunk.stored is not None:
                        chunk.stored.set_result(None)

        tasks = [asyncio.create_task(source.run()), asyncio.create_task(store())]
        try:
            await eventually(lambda: sim.replies.acks >= 3, within_s=30, what="three acknowledged frames")
        finally:
            await cancel_and_wait(tasks)
    samples = [s for chunk in stored if not isinstance(chunk.data, bytes) for s in chunk.data]
    pm = [s for s in samples if s.key == "a34004"]
    assert pm
    assert {s.value for s in pm} == {42.0}
    assert all(s.flag == "N" for s in pm)
    # DataTime is Beijing time on the wire and UTC in the sample: within the scenario's span.
    assert all(clock.ms(0) <= (s.ts_ms or 0) <= clock.ms(120) for s in pm)
    assert sim.replies.bad == 0
