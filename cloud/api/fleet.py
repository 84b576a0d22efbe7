"""Fleet routes: gateways (register, tokens, revoke, rotate, config), devices, fleet health, enrolment."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.security import Service, require
from cloud.auth import Role, User
from cloud.fleet import fleet_view
from cloud.registry import Device, GatewayUnknown, RegistryError, TokenError
from cloud.service import wall_ms
from gateway.enrolment import ERROR_STATUS, EnrolFailure, EnrolRequest

router = APIRouter(prefix="/api/v1")
Maintainer = Annotated[User, Depends(require(Role.ADMIN, Role.MAINTAINER))]
# The command center watches fleet health too (read-only): 一张屏 shows devices beside cases.
Watcher = Annotated[User, Depends(require(Role.ADMIN, Role.MAINTAINER, "maintenance", "shift_lead", "leader"))]


class GatewayIn(BaseModel):
    """A gateway to register."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    site: str = ""


class DeviceIn(BaseModel):
    """A device binding: gateway, profile, part id (部件标识码), location, grid and agent-side settings."""

    model_config = ConfigDict(extra="forbid")
    gateway: str
    profile: str
    part_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    grid: str | None = None
    settings: dict[str, Any] = {}
    stale_after_ms: int | None = None


class ConfigIn(BaseModel):
    """A configuration document to push as the gateway's next bundle."""

    model_config = ConfigDict(extra="forbid")
    document: dict[str, Any]


def _problem(exc: RegistryError) -> HTTPException:
    """Translate a registry error into an HTTP answer naming its reason."""
    code = status.HTTP_404_NOT_FOUND if "unknown" in type(exc).__name__.lower() else status.HTTP_409_CONFLICT
    if type(exc).__name__ == "InvalidValue":
        code = status.HTTP_422_UNPROCESSABLE_CONTENT
    return HTTPException(code, {"reason": getattr(exc, "reason", "error"), "detail": str(exc)})


@router.get("/gateways")
def list_gateways(svc: Service, _: Maintainer) -> list[dict[str, Any]]:
    """List registered gateways."""
    return [dataclasses.asdict(g) | {"state": g.state} for g in svc.registry.gateways()]


@router.post("/gateways", status_code=status.HTTP_201_CREATED)
def register_gateway(body: GatewayIn, svc: Service, _: Maintainer) -> dict[str, Any]:
    """Register a gateway and return its one-time enrolment token (shown once)."""
    try:
        gateway, token = svc.registry.register_gateway(body.name, body.site, wall_ms())
    except RegistryError as exc:
        raise _problem(exc) from exc
    return {"gateway": gateway.id, "token": token.token, "expires_ms": token.expires_ms}


@router.get("/gateways/{gateway}")
def get_gateway(gateway: str, svc: Service, _: Maintainer) -> dict[str, Any]:
    """Return one gateway."""
    try:
        g = svc.registry.gateway(gateway)
    except GatewayUnknown as exc:
        raise _problem(exc) from exc
    return dataclasses.asdict(g) | {"state": g.state}


@router.post("/gateways/{gateway}/token")
def new_token(gateway: str, svc: Service, _: Maintainer) -> dict[str, Any]:
    """Issue a fresh enrolment token (older unused ones stop working)."""
    try:
        token = svc.registry.issue_token(gateway, wall_ms())
    except RegistryError as exc:
        raise _problem(exc) from exc
    return {"gateway": gateway, "token": token.token, "expires_ms": token.expires_ms}


@router.post("/gateways/{gateway}/revoke")
def revoke(gateway: str, svc: Service, _: Maintainer) -> dict[str, Any]:
    """Revoke a gateway: its broker account goes, its connection is cut, ingest refuses it."""
    try:
        g = svc.registry.revoke(gateway, wall_ms())
    except RegistryError as exc:
        raise _problem(exc) from exc
    return {"gateway": g.id, "state": g.state}


@router.post("/gateways/{gateway}/rotate")
def rotate(gateway: str, svc: Service, _: Maintainer) -> dict[str, Any]:
    """Give a gateway a new broker password (the old one stops working); returned once."""
    try:
        creds = svc.registry.rotate(gateway, wall_ms())
    except RegistryError as exc:
        raise _problem(exc) from exc
    return {"gateway": creds.gateway, "username": creds.username, "password": creds.password}


@router.post("/gateways/{gateway}/config")
async def push_config(gateway: str, body: ConfigIn, svc: Service, _: Maintainer) -> dict[str, Any]:
    """Store and publish the gateway's next config bundle (retained); the agent acknowledges it."""
    try:
        svc.registry.gateway(gateway)
    except GatewayUnknown as exc:
        raise _problem(exc) from exc
    version = await svc.publish_config(gateway, body.document)
    return {"gateway": gateway, "version": version}


@router.get("/devices")
def list_devices(svc: Service, _: Watcher, gateway: str | None = None) -> list[dict[str, Any]]:
    """List bound devices, optionally of one gateway."""
    return [dataclasses.asdict(d) for d in svc.registry.devices(gateway)]


@router.put("/devices/{device}")
def bind_device(device: str, body: DeviceIn, svc: Service, _: Maintainer) -> dict[str, Any]:
    """Bind (or re-bind) a device to a gateway, a profile, a part id, a place and a grid."""
    try:
        bound = svc.registry.bind_device(Device(id=device, **body.model_dump()), wall_ms())
    except RegistryError as exc:
        raise _problem(exc) from exc
    svc.liveness.bind_devices([bound])
    return dataclasses.asdict(bound)


@router.get("/fleet")
def fleet(svc: Service, _: Watcher) -> list[dict[str, Any]]:
    """Fleet health: link state, last seen, versions, buffer depth and autonomy, decode-error rates."""
    return [dataclasses.asdict(row) for row in fleet_view(svc.registry, svc.liveness)]


@router.post("/enrol", response_model=None)
def enrol(body: EnrolRequest, svc: Service) -> dict[str, Any] | JSONResponse:
    """Exchange a one-time enrolment token for broker credentials and the first config bundle."""
    try:
        creds = svc.registry.enrol(body.token, wall_ms(), agent_version=body.agent_version, hostname=body.hostname)
    except TokenError as exc:
        failure = EnrolFailure(reason=exc.reason, detail=str(exc))
        return JSONResponse(failure.model_dump(), status_code=ERROR_STATUS[exc.reason])
    except RegistryError as exc:
        raise _problem(exc) from exc
    # A (re-)enrolled gateway may start its seqs anew: old applied seqs must not shadow them.
    svc.ledger.forget(creds.gateway)
    response: dict[str, Any] = creds.response().model_dump(mode="json")
    return response
