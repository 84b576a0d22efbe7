"""HJ 212 over TCP: a simulated station dials in, its frames are routed by MN and acknowledged once stored."""

from __future__ import annotations

import asyncio

import pytest

from device_profiles import BUNDLED_DIR, load_profile
from edge_agent.decode.hj212 import Hj212Decoder
from edge_agent.intake import Chunk, Intake
from edge_agent.sources.hj212 import Hj212Listener, StationStream
from gateway.aio import cancel_and_wait
from simulators.hj212 import Hj212Simulator, Hj212Station
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

MN = "GW0101A0000001"


async def store_everything(intake: Intake, stored: list[Chunk]) -> None:
    """Stand in for the pipeline: take chunks and mark them stored."""
    while True:
        for chunk in await intake.take(64):
            stored.append(chunk)
            if chunk.stored is not None:
                chunk.stored.set_result(None)


async def test_station_frames_are_routed_by_mn_and_acknowledged() -> None:
    """Frames asking for an acknowledgement get a 9014 that the station accepts; samples reach the intake."""
    profile = load_profile(BUNDLED_DIR / "hj212.yaml")
    assert profile.read.hj212 is not None
    decoder = Hj212Decoder(profile.read.hj212)
    intake = Intake()
    listener = Hj212Listener("127.0.0.1", 0, StationStream({"air-1": decoder}, intake, by_mn={MN: "air-1"}))
    stored: list[Chunk] = []
    tasks = [asyncio.create_task(listener.run()), asyncio.create_task(store_everything(intake, stored))]
    try:
        await eventually(lambda: listener.bound_port is not None, what="the listener to bind")
        assert listener.bound_port is not None
        station = Hj212Station(mn=MN, ack=True)
        async with Hj212Simulator(host="127.0.0.1", port=listener.bound_port, rtd_interval=1, station=station) as sim:
            await eventually(lambda: sim.replies.acks >= 2, what="two acknowledged frames")
        assert sim.replies.bad == 0
        assert sim.replies.acks_unmatched == 0
    finally:
        await cancel_and_wait(tasks)
    keys = {s.key for chunk in stored if not isinstance(chunk.data, bytes) for s in chunk.data}
    assert "a34004" in keys
    assert {chunk.device for chunk in stored} == {"air-1"}
    assert decoder.stats.counts["frames"] >= 2


async def test_unknown_station_is_counted_not_stored() -> None:
    """A station whose MN is not configured is counted and none of its data is stored."""
    intake = Intake()
    stream = StationStream({}, intake, by_mn={})
    listener = Hj212Listener("127.0.0.1", 0, stream)
    task = asyncio.create_task(listener.run())
    try:
        await eventually(lambda: listener.bound_port is not None, what="the listener to bind")
        assert listener.bound_port is not None
        async with Hj212Simulator(host="127.0.0.1", port=listener.bound_port, rtd_interval=1):
            await eventually(lambda: stream.counters["unknown_mn"] >= 1, what="an unknown-MN frame")
    finally:
        await cancel_and_wait(task)
    assert intake.depth() == 0
