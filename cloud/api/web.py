"""The command-center page: index.html at `/` and its assets under `/static/`, served from cloud/web."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"

router = APIRouter()


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """Return the single page (it fetches everything else from the API)."""
    # no-cache: a new release's page must not run against an old cached copy.
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def mount(app: FastAPI) -> None:
    """Serve the page at `/` and its assets at `/static/`."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
