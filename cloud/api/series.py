"""Series routes: one device's quantity over a time range, raw or downsampled to a step."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from cloud.api.security import Service, current_user
from cloud.auth import User
from cloud.store import StoreError

router = APIRouter(prefix="/api/v1")
# A query may return at most this many points: ask for a coarser step beyond it.
MAX_POINTS = 20_000


@router.get("/series")
async def series(
    svc: Service,
    _: Annotated[User, Depends(current_user)],
    device: str,
    quantity: str,
    start_ms: Annotated[int, Query(ge=0)],
    end_ms: Annotated[int, Query(gt=0)],
    step_ms: Annotated[int | None, Query(gt=0)] = None,
) -> dict[str, Any]:
    """Return a series in [start_ms, end_ms): raw good readings, or mean/min/max/count per step bucket."""
    if end_ms <= start_ms:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end_ms must be after start_ms")
    if step_ms is not None and (end_ms - start_ms) // step_ms > MAX_POINTS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"more than {MAX_POINTS} buckets: use a larger step")
    try:
        # The store is synchronous (and locked against ingest's writer thread): query off the event loop.
        points = await asyncio.to_thread(svc.store.query, device, quantity, start_ms, end_ms, step_ms)
    except StoreError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
    return {
        "device": device,
        "quantity": quantity,
        "step_ms": step_ms,
        "points": [dataclasses.asdict(p) for p in points[:MAX_POINTS]],
    }
