"""The HTTP API of the cloud: FastAPI routes under /api/v1, /healthz and /metrics."""

from cloud.api.app import create_app

__all__ = ["create_app"]
