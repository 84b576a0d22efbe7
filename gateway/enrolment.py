"""Enrolment and config-bundle wire shapes: pydantic models in, JSON bytes out, and back (EnrolmentWireError).

Both sides share these:

    POST {cloud}/api/v1/enrol   EnrolRequest JSON -> 200 EnrolResponse JSON, or an EnrolFailure JSON with
                                the HTTP status of its reason (ERROR_STATUS)
    gw/{id}/config              retained ConfigBundle JSON, cloud -> gateway; never carries the password
    gw/{id}/config/ack          ConfigAck JSON, gateway -> cloud, one per bundle version it handled

A bundle's `document` is an agent configuration (edge_agent.config) without secrets: the agent keeps its
uplink username and password from the enrolment and fills them into every bundle it applies.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.topics import GATEWAY_ID_RE

ENROL_PATH: Final = "/api/v1/enrol"
# A token is 32 random bytes in url-safe base64 (43 characters); anything far off is not worth a lookup.
TOKEN_PATTERN: Final = r"^[A-Za-z0-9_-]{20,128}$"
_GATEWAY_PATTERN: Final = f"^{GATEWAY_ID_RE.pattern}$"
# What the enrol endpoint answers for each refusal; the agent maps them back to a reason.
ERROR_STATUS: Final[dict[str, int]] = {
    "token_unknown": 404,
    "token_used": 409,
    "token_expired": 410,
    "invalid_request": 422,
}


class EnrolmentWireError(ValueError):
    """Bytes are not a valid enrolment, bundle or ack message."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=_Wire)


class EnrolRequest(_Wire):
    """What the gateway sends to exchange its one-time token."""

    token: str = Field(pattern=TOKEN_PATTERN, repr=False)
    agent_version: str = Field(default="", max_length=64)
    hostname: str = Field(default="", max_length=255)


class ConfigBundle(_Wire):
    """One versioned agent configuration for one gateway (versions increase per gateway from 1)."""

    gateway: str = Field(pattern=_GATEWAY_PATTERN)
    version: int = Field(ge=1)
    document: dict[str, Any]
    created_ms: int = Field(ge=0)


class BrokerEndpoint(_Wire):
    """Where the gateway's uplink connects."""

    host: str
    port: int = Field(gt=0, lt=65536)


class EnrolResponse(_Wire):
    """What the cloud returns once for a valid token: broker credentials and the first bundle."""

    gateway: str = Field(pattern=_GATEWAY_PATTERN)
    username: str
    # repr=False keeps the secret out of logs and tracebacks that print the model.
    password: str = Field(min_length=1, repr=False)
    broker: BrokerEndpoint
    bundle: ConfigBundle


class EnrolFailure(_Wire):
    """The body of a refused enrolment: a stable reason (a key of ERROR_STATUS) and a human detail."""

    reason: str
    detail: str = ""


class AckStatus(StrEnum):
    """What the agent did with a bundle."""

    APPLIED = "applied"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"


class ConfigAck(_Wire):
    """The agent's answer to one bundle on `gw/{id}/config/ack`; error is set unless applied."""

    gateway: str = Field(pattern=_GATEWAY_PATTERN)
    version: int = Field(ge=0)
    status: AckStatus
    error: str | None = Field(default=None, max_length=4096)
    ts_ms: int = Field(ge=0)


def encode(message: _Wire) -> bytes:
    """Encode any of the wire models as compact JSON bytes."""
    return message.model_dump_json().encode()


def _decode(model: type[M], data: bytes | str) -> M:
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise EnrolmentWireError(f"invalid {model.__name__}: {exc.errors(include_url=False)}") from exc


def decode_bundle(data: bytes | str) -> ConfigBundle:
    """Decode a retained `gw/{id}/config` payload."""
    return _decode(ConfigBundle, data)


def decode_ack(data: bytes | str) -> ConfigAck:
    """Decode a `gw/{id}/config/ack` payload."""
    return _decode(ConfigAck, data)


def decode_request(data: bytes | str) -> EnrolRequest:
    """Decode an enrol request body."""
    return _decode(EnrolRequest, data)


def decode_response(data: bytes | str) -> EnrolResponse:
    """Decode an enrol response body."""
    return _decode(EnrolResponse, data)


def decode_failure(data: bytes | str) -> EnrolFailure:
    """Decode a refused enrolment's body."""
    return _decode(EnrolFailure, data)
