"""The agent as a real process between two real brokers: outages and crashes lose nothing, double nothing."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.agent.agent_rig import (
    Upstream,
    prepare_sensor_session,
    publish,
    start_agent,
    stop_agent,
    write_config,
)
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

QUANTITIES = 2  # temperature and humidity per message


async def test_upstream_outage_of_20s_at_200_readings_per_s_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """The upstream broker is stopped for 20 s at 200 readings/s; after the drain each reading is there once."""
    async with Mosquitto(tmp_path / "field") as field, Mosquitto(tmp_path / "upstream") as upstream:
        await prepare_sensor_session(field)
        config = write_config(tmp_path / "agent.yaml", field, upstream)
        async with Collector(upstream, "gw/#", client_id="cloud") as collector:
            view = Upstream(collector)
            agent = await start_agent(config)
            try:
                await eventually(view.online, within_s=20, what="the agent's online status")
                sent: Counter[str] = Counter()
                base = datetime.now(tz=UTC)
                # 50 messages/s × 2 sensors × 2 quantities = 200 readings/s for 30 s.
                publisher = asyncio.create_task(publish(field, 50, 30, base, sent))
                await eventually(lambda: sum(sent.values()) >= 500, within_s=20, what="traffic before the outage")
                await upstream.stop()
                await asyncio.sleep(20)  # the outage itself: its length is what is tested
                await upstream.start()
                await publisher
                expected = sum(sent.values()) * QUANTITIES
                await eventually(
                    lambda: len(view.readings_after_seq_dedup()) >= expected, within_s=60, what="the drain"
                )
            finally:
                logged = await stop_agent(agent)
        counts = view.readings_after_seq_dedup()
        assert len(counts) == expected, logged.decode(errors="replace")[-2000:]
        assert set(counts.values()) == {1}
        seqs = [seq for seq, _ in view.envelopes()]
        # Without a crash a seq is resent only if its PUBACK was lost with the broker: never reassigned.
        assert len(set(seqs)) == len(dict.fromkeys(seqs))


async def test_sigkilled_agent_loses_nothing_it_stored(tmp_path: Path) -> None:
    """SIGKILL mid-stream, then restart: every reading published to the field broker still arrives upstream."""
    async with Mosquitto(tmp_path / "field") as field, Mosquitto(tmp_path / "upstream") as upstream:
        await prepare_sensor_session(field)
        config = write_config(tmp_path / "agent.yaml", field, upstream)
        async with Collector(upstream, "gw/#", client_id="cloud") as collector:
            view = Upstream(collector)
            agent = await start_agent(config)
            try:
                await eventually(view.online, within_s=20, what="the agent's online status")
                sent: Counter[str] = Counter()
                publisher = asyncio.create_task(publish(field, 100, 12, datetime.now(tz=UTC), sent))
                await eventually(lambda: sum(sent.values()) >= 600, within_s=20, what="traffic before the kill")
                await stop_agent(agent, signal.SIGKILL)
                agent = await start_agent(config)
                await publisher
                expected = sum(sent.values()) * QUANTITIES
                await eventually(
                    lambda: len(view.readings_after_seq_dedup()) >= expected, within_s=60, what="the drain"
                )
            finally:
                logged = await stop_agent(agent)
        counts = view.readings_after_seq_dedup()
        # Nothing lost. A message stored but not yet acknowledged to the field broker when the agent died
        # is redelivered and stored again: the same (device, quantity, ts), which the cloud writes once.
        assert len(counts) == expected, logged.decode(errors="replace")[-2000:]
