"""Rule-state persistence: the engine's snapshot written atomically so that a restart resumes it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


def save_state(path: Path, snapshot: dict[str, Any]) -> None:
    """Write `snapshot` to `path` atomically (write, fsync, rename), so a crash leaves old or new."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(orjson.dumps(snapshot))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any] | None:
    """Return the saved snapshot, or None when there is none or it is unreadable."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
