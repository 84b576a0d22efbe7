"""`gridwatch demo` without mosquitto: the fallback to the embedded amqtt broker, and the short demo on it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from rich.console import Console

from gridwatch.broker import Amqtt, BrokerError, Mosquitto, free_port
from gridwatch.demo import FALLBACK, BrokerChoice, DemoPlan, run_demo, start_brokers

pytestmark = pytest.mark.integration


def text(console: Console) -> str:
    """Return what a console built on a StringIO printed."""
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


async def test_a_mosquitto_that_fails_to_start_falls_back_to_amqtt(tmp_path: Path) -> None:
    """`auto` with a mosquitto binary that exits at once prints the one fallback line and runs two amqtt brokers."""
    console = Console(file=io.StringIO(), width=200)
    plan = DemoPlan(broker=BrokerChoice.AUTO, mosquitto="/bin/false")
    async with contextlib.AsyncExitStack() as stack:
        field_broker, upstream = await start_brokers(stack, plan, tmp_path, console)
        assert isinstance(field_broker, Amqtt)
        assert isinstance(upstream, Amqtt)
        assert field_broker.running
        assert upstream.running
        assert (upstream.mqtt5, upstream.shared_subscriptions, upstream.anonymous) == (False, False, False)
    assert not upstream.running
    output = text(console)
    assert output.count(FALLBACK) == 1
    # Installed but failing: the reason follows on its own line.
    assert "mosquitto exited with 1" in output


async def test_auto_uses_mosquitto_when_it_starts(tmp_path: Path) -> None:
    """`auto` with a working mosquitto runs mosquitto and prints no fallback line."""
    console = Console(file=io.StringIO(), width=200)
    async with contextlib.AsyncExitStack() as stack:
        field_broker, upstream = await start_brokers(stack, DemoPlan(), tmp_path, console)
        assert isinstance(field_broker, Mosquitto)
        assert isinstance(upstream, Mosquitto)
        assert upstream.running
    assert not upstream.running
    assert FALLBACK not in text(console)


async def test_asking_for_mosquitto_without_it_is_an_error(tmp_path: Path) -> None:
    """`--broker mosquitto` with no mosquitto binary fails with a clear reason instead of falling back."""
    console = Console(file=io.StringIO(), width=200)
    plan = DemoPlan(broker=BrokerChoice.MOSQUITTO, mosquitto=str(tmp_path / "no-such-mosquitto"))
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(BrokerError, match="no executable"):
            await start_brokers(stack, plan, tmp_path, console)
    assert FALLBACK not in text(console)


async def test_short_demo_runs_the_whole_system_on_amqtt() -> None:
    """With mosquitto missing the demo says so once, and every gateway delivers over MQTT 3.1.1 through amqtt."""
    console = Console(file=io.StringIO(), width=200)
    plan = DemoPlan(
        duration_s=30,
        port=free_port(),
        scenario_at_s=5,
        outage_at_s=10,
        outage_for_s=6,
        live=False,
        mosquitto="/nonexistent/mosquitto",
    )
    state = await run_demo(plan, console)
    report = state.report
    assert report is not None
    output = text(console)
    assert output.count(FALLBACK) == 1
    assert "no executable" not in output
    assert "amqtt brokers" in output
    assert f"open http://127.0.0.1:{plan.port}" in output
    assert report.online == {s.gateway for s in state.sites}
    assert report.readings > 1000
    assert report.cases >= 2
    assert report.uplink_cuts == 1
    workers = state.service.workers
    assert [(w.settings.protocol, w.settings.group) for w in workers] == [("3.1.1", None)]
    assert sum(w.counters.rejected.total() for w in workers) == 0
    assert all(agent.config.uplink.protocol == "3.1.1" for agent in state.agents.values())
