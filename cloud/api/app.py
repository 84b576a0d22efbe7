"""The FastAPI application: the service's background tasks run in its lifespan; routes are mounted here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import Response
from fastapi.security import OAuth2PasswordRequestForm
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from cloud.api import fleet, incidents, live, open311, series, web
from cloud.api.metrics import registry_for
from cloud.api.security import Service, require
from cloud.auth import AuthError, Role, User
from cloud.service import CloudService, wall_ms
from gateway.aio import cancel_and_wait


class UserIn(BaseModel):
    """A user to create: name, password, role (fleet or governance) and data scope (territory or department code)."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8)
    role: str
    scope: str = ""


def create_app(service: CloudService, *, run_background: bool = True) -> FastAPI:
    """Build the app around `service`; its ingest, liveness and config tasks live as long as the app."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(service.run(), name="cloud service") if run_background else None
        try:
            yield
        finally:
            if task is not None:
                await cancel_and_wait(task)

    app = FastAPI(title="gridwatch cloud", version="1", lifespan=lifespan)
    app.state.service = service
    metrics = registry_for(service)
    app.include_router(fleet.router)
    app.include_router(series.router)
    app.include_router(incidents.router)
    app.include_router(open311.router)
    app.include_router(live.router)

    @app.post("/api/v1/users", status_code=status.HTTP_201_CREATED)
    def create_user(body: UserIn, svc: Service, _: Annotated[User, Depends(require(Role.ADMIN))]) -> dict[str, Any]:
        """Create a user with a role and a data scope (admins only)."""
        try:
            user = svc.auth.create_user(body.username, body.password, body.role, wall_ms(), scope=body.scope)
        except AuthError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, {"reason": "refused", "detail": str(exc)}) from exc
        return {"username": user.username, "role": user.role, "scope": user.scope}

    @app.post("/api/v1/auth/token")
    def token(svc: Service, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
        """Exchange a username and password for a bearer token (OAuth2 password flow)."""
        user = svc.auth.authenticate(form.username, form.password)
        if user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
        token = svc.auth.issue_token(user, wall_ms())
        return {"access_token": token, "token_type": "bearer", "role": user.role, "scope": user.scope}

    @app.get("/healthz")
    def healthz(svc: Service) -> dict[str, Any]:
        """Liveness of the service: ingest workers connected, database reachable."""
        svc.db.fetchone("SELECT 1")
        return {"status": "ok", "ingest_connected": [w.connected for w in svc.workers]}

    @app.get("/metrics")
    def prometheus() -> Response:
        """Prometheus text exposition of ingest, fleet and event counters."""
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    web.mount(app)
    return app
