"""`gridwatch demo` end to end, shortened: five gateways → cloud, cases opened, an uplink cut and caught up."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from gridwatch.broker import free_port
from gridwatch.demo import DemoPlan, run_demo

pytestmark = pytest.mark.integration


async def test_short_demo_runs_the_whole_system() -> None:
    """Every gateway delivers, the scenario opens cases, and the cut gateway is back online at the end."""
    console = Console(file=io.StringIO(), width=160)
    plan = DemoPlan(duration_s=45, port=free_port(), scenario_at_s=5, outage_at_s=12, outage_for_s=8, live=False)
    state = await run_demo(plan, console)
    report = state.report
    assert report is not None
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"open http://127.0.0.1:{plan.port}" in output
    assert report.online == {s.gateway for s in state.sites}
    assert report.readings > 1000
    assert report.cases >= 2
    assert report.uplink_cuts == 1
