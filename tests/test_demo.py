"""`gridwatch demo` end to end, shortened: devices → agent → brokers, through a scripted uplink outage."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from gridwatch.demo import DemoPlan, run_demo

pytestmark = pytest.mark.integration


async def test_short_demo_delivers_through_an_outage() -> None:
    """A 25 s demo with a 6 s outage delivers readings from every simulated device, none twice."""
    console = Console(file=io.StringIO(), width=120)
    view = await run_demo(DemoPlan(duration_s=25, outage_at_s=8, outage_for_s=6, live=False), console)
    devices = {device for device, _ in view.latest}
    assert devices >= {"gnss-1", "pressure-1", "level-2", "gas-tunnel-3", "flow-4", "MH-0001", "TH-0001", "air-1"}
    assert view.rejected == 0
    assert view.readings > 300
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert "edge agent gw-demo-1 running" in output
