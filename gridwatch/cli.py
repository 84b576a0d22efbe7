"""The `gridwatch` console script: one typer app with a subcommand per job."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
import typer.main
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from typer.core import TyperGroup

from device_profiles import BUNDLED_DIR, ProfileError, load_profiles
from edge_agent.replay import ReplayTally, reading_record, replay
from gridwatch.cli_agent import agent_app
from gridwatch.cli_cloud import cloud_app, gateway_app

if TYPE_CHECKING:
    # typer 0.29 vendors click (a private module): needed for the group API's types only, never at run time.
    from typer._click import Command, Context


class _LazySimulate(TyperGroup):
    """`gridwatch simulate`: the simulators' commands, imported only when this group lists or runs them.

    The simulators (pymodbus servers, pty devices, MQTT sensors) cost ~17 MB of imports that the agent
    and the cloud never use.
    """

    def _load(self) -> None:
        if not self.commands:
            from simulators.cli import simulate_app

            self.commands.update(typer.main.get_group(simulate_app).commands)

    def list_commands(self, ctx: Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)


app = typer.Typer(no_args_is_help=True, add_completion=False, help="gridwatch: city sensors into grid governance.")
simulate_app = typer.Typer(
    cls=_LazySimulate,
    help="Simulated field devices speaking real wire formats over pseudo-terminals, TCP and MQTT.",
    no_args_is_help=True,
)
profiles_app = typer.Typer(no_args_is_help=True, help="Device profiles.")
app.add_typer(profiles_app, name="profiles")
app.add_typer(simulate_app, name="simulate")
app.add_typer(agent_app, name="agent")
app.add_typer(cloud_app, name="cloud")
app.add_typer(gateway_app, name="gateway")

err = Console(stderr=True)


class ReplayFormat(StrEnum):
    """Output formats of `gridwatch replay`."""

    JSONL = "jsonl"
    TABLE = "table"


@profiles_app.command("check")
def profiles_check(
    directory: Annotated[Path, typer.Argument(help="Directory of profile YAML files.")] = BUNDLED_DIR,
) -> None:
    """Validate every profile in DIRECTORY and list them."""
    try:
        profiles = load_profiles([directory])
    except ProfileError as exc:
        err.print(f"[red]invalid profiles[/red]\n{exc}", highlight=False)
        raise typer.Exit(1) from exc
    table = Table(title=f"{len(profiles)} profiles in {directory}")
    for column in ("name", "transport", "decoder", "quantities", "rules"):
        table.add_column(column)
    for profile in profiles.values():
        table.add_row(
            profile.name,
            profile.read.transport,
            profile.read.decoder,
            ", ".join(m.quantity for m in profile.measures),
            ", ".join(r.name for r in profile.rules),
        )
    Console().print(table)


@app.command("replay")
def replay_command(
    file: Annotated[Path, typer.Argument(help="Capture: NMEA log, HJ 212 frames, JSON lines, Modbus hex.")],
    profile: Annotated[str, typer.Option(help="Profile name.")],
    device: Annotated[str, typer.Option(help="Device id printed on each reading.")] = "replay",
    output: Annotated[ReplayFormat, typer.Option("--format", help="Output format.")] = ReplayFormat.JSONL,
    profiles_dir: Annotated[
        list[Path] | None, typer.Option(help="Extra profile directories (override bundled names).")
    ] = None,
    now: Annotated[datetime | None, typer.Option(help="Arrival time to assume (default: the clock).")] = None,
) -> None:
    """Feed a capture through a profile's decoder and normalizer; print one JSON object per reading."""
    try:
        profiles = load_profiles([BUNDLED_DIR, *(profiles_dir or [])])
    except ProfileError as exc:
        err.print(f"[red]invalid profiles[/red]\n{exc}", highlight=False)
        raise typer.Exit(2) from exc
    if profile not in profiles:
        err.print(f"unknown profile {profile!r}; known: {', '.join(sorted(profiles))}", highlight=False)
        raise typer.Exit(2)
    if not file.is_file():
        err.print(f"{file}: no such capture file", highlight=False)
        raise typer.Exit(2)
    now_ms = int((now.timestamp() if now is not None else time.time()) * 1000)
    tally = ReplayTally()
    readings = replay(file, profiles[profile], device, now_ms, tally)
    if output is ReplayFormat.JSONL:
        write = sys.stdout.buffer.write
        for reading in readings:
            write(orjson.dumps(reading_record(reading)) + b"\n")
    else:
        table = Table()
        for column in ("device", "quantity", "value", "unit", "ts", "quality", "reason"):
            table.add_column(column)
        for reading in readings:
            record = reading_record(reading)
            table.add_row(*("" if v is None else str(v) for v in record.values()))
        Console().print(table)
    summary = ", ".join(f"{k}={v}" for k, v in sorted({**tally.outcomes, **tally.qualities}.items()))
    err.print(f"replay {file.name} with {profile}: {summary or 'nothing decoded'}", highlight=False)


@app.command("demo")
def demo_command(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")] = None,
    port: Annotated[int, typer.Option(help="Port of the cloud's web page and API.")] = 8000,
    outage_at: Annotated[float, typer.Option(help="Seconds until the fifth gateway's uplink is cut.")] = 60.0,
    outage_for: Annotated[float, typer.Option(help="Seconds the uplink stays cut.")] = 30.0,
    live: Annotated[bool, typer.Option(help="Show the live status view.")] = True,
    broker: Annotated[
        str, typer.Option(help="MQTT broker: auto (mosquitto, else the embedded amqtt), mosquitto or amqtt.")
    ] = "auto",
) -> None:
    """Run the whole system: five simulated gateways and their devices, their agents, the cloud, a scenario."""
    from gridwatch.broker import BrokerError
    from gridwatch.demo import BrokerChoice, DemoPlan, run_demo

    try:
        choice = BrokerChoice(broker)
    except ValueError:
        err.print(f"--broker must be one of {', '.join(BrokerChoice)}; got {broker!r}", highlight=False)
        raise typer.Exit(2) from None

    console = Console()
    # Log lines (a link going down, coming back) print above the live view instead of tearing it.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(name)s: %(message)s",  # RichHandler shows the time and level itself
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    # paho's own socket errors repeat what the uplink's warning says when the scenario cuts a link.
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)
    plan = DemoPlan(
        duration_s=duration, port=port, outage_at_s=outage_at, outage_for_s=outage_for, live=live, broker=choice
    )
    try:
        state = asyncio.run(run_demo(plan, console))
    except KeyboardInterrupt:
        console.print("stopped.")
        return
    except BrokerError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from exc
    if state.report is not None:
        r = state.report
        console.print(f"demo finished: {r.readings} readings stored, {r.cases} cases, {len(r.online)} gateways online.")
