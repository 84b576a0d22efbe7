"""Live routes: a bearer token and an optional resume point in; the caller's scoped live events out.

`GET /api/v1/live` is a WebSocket (browsers cannot set headers on one, so the token comes as `?token=`);
`GET /api/v1/live/sse` is Server-Sent Events (token as a bearer header or `?token=`; `Last-Event-ID` or
`?since=` resumes). Every message is JSON `{seq, type, data}`: first `hello` (data: the hub id and the seq
the stream continues after), then `case`, `alert` and `fleet` events, or `resync` when the client must
re-fetch its lists through the REST API. A client resumes with `?since=<last seq>&hub=<hub id>`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Header, HTTPException, Request, WebSocket, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from cloud.api.security import Service
from cloud.auth import INCIDENT_ROLE, User
from cloud.incidents.roles import Actor
from cloud.live.stream import Subscription
from cloud.service import CloudService, wall_ms

router = APIRouter(prefix="/api/v1")

BATCH: Final = 500
SSE_KEEPALIVE_S: Final = 15.0
# Close code for a refused WebSocket after accept is not used: before accept Starlette answers HTTP 403.
POLICY_VIOLATION: Final = 1008


def _actor(user: User) -> Actor:
    return Actor(user.username, INCIDENT_ROLE.get(user.role, user.role), user.scope)


async def _user(svc: CloudService, token: str | None) -> User | None:
    if not token:
        return None
    return await run_in_threadpool(svc.auth.user_for_token, token, wall_ms())


def _hello(svc: CloudService, subscription: Subscription) -> dict[str, Any]:
    start = subscription.sub.start
    return {"seq": start, "type": "hello", "data": {"hub": svc.live.hub.origin, "seq": start}}


@router.websocket("/live")
async def live_ws(websocket: WebSocket, token: str = "", since: int | None = None, hub: str | None = None) -> None:
    """Stream the caller's live events over a WebSocket until either side closes."""
    svc: CloudService = websocket.app.state.service
    user = await _user(svc, token)
    if user is None:
        await websocket.close(code=POLICY_VIOLATION, reason="invalid or expired token")
        return
    await websocket.accept()
    async with svc.live.stream.subscribe(_actor(user), since, hub=hub) as subscription:

        async def pump() -> None:
            await websocket.send_text(orjson.dumps(_hello(svc, subscription)).decode())
            while True:
                for message in await subscription.batch(BATCH):
                    await websocket.send_text(orjson.dumps(message).decode())

        async def drain() -> None:
            # Incoming frames are ignored; reading them is how a close is noticed while idle.
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass

        tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                task.result()


def _sse(message: dict[str, Any]) -> str:
    return f"id: {message['seq']}\nevent: {message['type']}\ndata: {orjson.dumps(message).decode()}\n\n"


@router.get("/live/sse")
async def live_sse(
    request: Request,
    svc: Service,
    token: str | None = None,
    since: int | None = None,
    hub: str | None = None,
    authorization: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Stream the caller's live events as Server-Sent Events (`id:` is the seq)."""
    if authorization is not None and authorization.lower().startswith("bearer "):
        token = authorization[7:]
    user = await _user(svc, token)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"}
        )
    if last_event_id is not None and last_event_id.strip().isdigit():
        since = int(last_event_id)
    actor = _actor(user)

    async def events() -> AsyncIterator[str]:
        async with svc.live.stream.subscribe(actor, since, hub=hub) as subscription:
            yield _sse(_hello(svc, subscription))
            while True:
                try:
                    batch = await asyncio.wait_for(subscription.batch(BATCH), SSE_KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield "".join(_sse(m) for m in batch)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
