"""`gridwatch cloud` (API + ingest in one process) and `gridwatch gateway …` (fleet registry for maintainers)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

cloud_app = typer.Typer(help="The cloud tier: API, ingest, fleet.")
gateway_app = typer.Typer(no_args_is_help=True, help="Register, revoke and rotate gateways (maintainers).")
if TYPE_CHECKING:
    from cloud.settings import CloudSettings

err = Console(stderr=True)
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Cloud settings (YAML).")]


def _settings(config: Path | None) -> CloudSettings:
    """Load cloud settings or exit 2 naming the bad key."""
    from cloud.settings import SettingsError, load_settings

    try:
        return load_settings(config)
    except SettingsError as exc:
        err.print(f"[red]settings error[/red]\n{exc}", highlight=False)
        raise typer.Exit(2) from exc


@cloud_app.callback(invoke_without_command=True)
def cloud_command(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default 8000).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Serve the API and run the ingest workers in one process."""
    import uvicorn

    from cloud.api import create_app
    from cloud.service import CloudService

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(config)
    updates = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings.model_copy(update=updates)
    service = CloudService(settings)
    try:
        uvicorn.run(create_app(service), host=settings.host, port=settings.port, log_level=log_level.lower())
    finally:
        service.close()


@gateway_app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Gateway name; its id is derived from it.")],
    site: Annotated[str, typer.Option(help="Where the gateway is installed.")] = "",
    config: ConfigOption = None,
) -> None:
    """Register a gateway and print its one-time enrolment token (shown once, expiring)."""
    from cloud.registry import RegistryError
    from cloud.service import CloudService, wall_ms

    service = CloudService(_settings(config).model_copy(update={"ingest_workers": 0}))
    try:
        gateway, token = service.registry.register_gateway(name, site, wall_ms())
    except RegistryError as exc:
        err.print(f"[red]refused[/red]: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        service.close()
    Console().print(f"gateway {gateway.id} registered; enrolment token (one use, expires {token.expires_ms} ms):")
    print(token.token)


def _registry_action(gateway: str, config: Path | None, action: str) -> None:
    """Run `revoke` or `rotate` on one gateway and report."""
    from cloud.registry import RegistryError
    from cloud.service import CloudService, wall_ms

    service = CloudService(_settings(config).model_copy(update={"ingest_workers": 0}))
    try:
        if action == "revoke":
            service.registry.revoke(gateway, wall_ms())
            Console().print(f"gateway {gateway} revoked: it can no longer connect")
        else:
            creds = service.registry.rotate(gateway, wall_ms())
            Console().print(f"gateway {gateway}: new broker password (shown once):")
            print(creds.password)
    except RegistryError as exc:
        err.print(f"[red]refused[/red]: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        service.close()


@gateway_app.command("revoke")
def revoke(gateway: str, config: ConfigOption = None) -> None:
    """Revoke a gateway: its broker account goes and its connection is cut."""
    _registry_action(gateway, config, "revoke")


@gateway_app.command("rotate")
def rotate(gateway: str, config: ConfigOption = None) -> None:
    """Give a gateway a new broker password; the old one stops working."""
    _registry_action(gateway, config, "rotate")
