"""Rule state survives an agent restart, and a bad configuration stops start-up naming the key."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
import yaml

from tests.agent.agent_rig import (
    Upstream,
    prepare_sensor_session,
    reading_payload,
    start_agent,
    stop_agent,
    write_config,
)
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.waiting import eventually

HOT = {
    "name": "too_hot",
    "kind": "threshold",
    "quantity": "temperature",
    "levels": [{"severity": 2, "above": 30}],
    "for": "10s",
}


@pytest.mark.integration
async def test_a_10s_hold_that_ran_8s_fires_2s_after_restart(tmp_path: Path) -> None:
    """Pending since t0 with a reading at t0+8 s; after a restart the reading at t0+10 s fires, t0+9 s does not."""
    async with Mosquitto(tmp_path / "field") as field, Mosquitto(tmp_path / "upstream") as upstream:
        await prepare_sensor_session(field)
        config = write_config(tmp_path / "agent.yaml", field, upstream, extra_rules=[HOT])
        t0 = datetime.now(tz=UTC).timestamp()

        async def send(offset: float) -> None:
            async with aiomqtt.Client(field.host, field.port, identifier="hot-sensor") as client:
                await client.publish("sensors/TH-1/data", reading_payload("TH-1", t0 + offset, 35.0, 50.0), qos=1)

        async with Collector(upstream, "gw/#", client_id="cloud") as collector:
            view = Upstream(collector)
            agent = await start_agent(config)
            await eventually(view.online, within_s=20, what="the agent's online status")
            for offset in (0, 4, 8):
                await send(offset)
            await eventually(lambda: ("too_hot", "pending", int(t0 * 1000)) in view.alerts(), what="pending")
            await eventually(lambda: len(view.readings_after_seq_dedup()) >= 6, what="the held readings upstream")
            await stop_agent(agent)
            agent = await start_agent(config)
            try:
                await send(9)
                await send(10)
                fired = ("too_hot", "firing", int((t0 + 10) * 1000))
                await eventually(lambda: fired in view.alerts(), within_s=20, what="firing at t0+10 s")
            finally:
                await stop_agent(agent)
        states = [(state, ts) for rule, state, ts in view.alerts() if rule == "too_hot"]
        assert [s for s, _ in states] == ["pending", "firing"]


def test_bad_config_stops_start_up_with_the_key_path(tmp_path: Path) -> None:
    """`gridwatch agent` refuses a config with an unknown key, exits 2 and names the key path."""
    sample = Path(__file__).resolve().parents[2] / "edge_agent" / "agent.example.yaml"
    doc = yaml.safe_load(sample.read_text(encoding="utf-8"))
    doc["devices"][1]["slave_id"] = 3
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "gridwatch", "agent", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "devices[1].slave_id: unknown key" in done.stderr
