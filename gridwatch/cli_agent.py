"""`gridwatch agent`: run a gateway's agent, or enrol a new gateway with the cloud."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

agent_app = typer.Typer(help="The edge agent of a field gateway.")
err = Console(stderr=True)


@agent_app.callback(invoke_without_command=True)
def agent_command(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Agent configuration (YAML).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run the edge agent of one gateway until SIGTERM or Ctrl-C (or use a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        err.print("gridwatch agent needs --config FILE (or a subcommand such as `enroll`)")
        raise typer.Exit(2)
    from edge_agent.agent import Agent, resolve_data_dir
    from edge_agent.config import ConfigError, load_config

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        # A config bundle applied from the cloud restarts the agent on the new version behind the pointer.
        while True:
            try:
                settings, specs = load_config(config)
            except ConfigError as exc:
                err.print(f"[red]configuration error[/red]\n{exc}", highlight=False)
                raise typer.Exit(2) from exc
            agent = Agent(resolve_data_dir(config, settings), specs, config_path=config)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, agent.stopping.set)
            await agent.run()
            if not agent.restart.is_set() or agent.stopping.is_set():
                return

    asyncio.run(main())


@agent_app.command("enroll")
def enroll_command(
    token: Annotated[str, typer.Argument(help="The one-time enrolment token from `gridwatch gateway register`.")],
    cloud: Annotated[str, typer.Option("--cloud", help="The cloud's URL, e.g. http://127.0.0.1:8000.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write agent.yaml.")] = Path("."),
) -> None:
    """Exchange an enrolment token for broker credentials and the first configuration."""
    from edge_agent.enrol import EnrolError, enrol

    try:
        path = enrol(token, cloud, out)
    except EnrolError as exc:
        err.print(f"[red]enrolment refused[/red]: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    Console().print(f"enrolled; configuration written to {path} (run: gridwatch agent --config {path})")
