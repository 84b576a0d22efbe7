"""MQTT topic names: a gateway id and a kind in, a topic string out, and back (`parse`) with TopicError.

Topics (a gateway's broker credentials allow publishing only under its own `gw/{gateway}/`):

    gw/{gateway}/telemetry    edge -> cloud, QoS 1, telemetry-lane envelopes
    gw/{gateway}/alerts       edge -> cloud, QoS 1, alert-lane envelopes
    gw/{gateway}/status       edge -> cloud, retained; status-lane envelopes, Last Will = b"offline"
    gw/{gateway}/config       cloud -> edge, retained config bundles
    gw/{gateway}/config/ack   edge -> cloud, config bundle acknowledgements

Gateway ids match `^[a-z0-9][a-z0-9_-]{0,63}$`, so they can never carry `/`, `+` or `#`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final, TypeGuard

GATEWAY_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PREFIX: Final = "gw"
# The Last Will payload on the status topic; every other status payload is an envelope.
OFFLINE: Final = b"offline"
_SHARE_GROUP_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class TopicError(ValueError):
    """A topic, gateway id or subscription group is not valid; `reason` is a stable outcome name."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Kind(StrEnum):
    """What a topic carries; the value is the topic suffix after `gw/{gateway}/`."""

    TELEMETRY = "telemetry"
    ALERTS = "alerts"
    STATUS = "status"
    CONFIG = "config"
    CONFIG_ACK = "config/ack"


_KINDS: Final[dict[str, Kind]] = {k.value: k for k in Kind}


def is_gateway_id(gateway: object) -> TypeGuard[str]:
    """Tell whether `gateway` is a valid gateway id."""
    return type(gateway) is str and GATEWAY_ID_RE.fullmatch(gateway) is not None


def validate_gateway(gateway: str) -> str:
    """Return `gateway` unchanged, or raise TopicError(reason="gateway") when it is not a valid id."""
    if not is_gateway_id(gateway):
        raise TopicError(f"invalid gateway id {gateway!r}", reason="gateway")
    return gateway


def topic(gateway: str, kind: Kind | str) -> str:
    """Return the topic of `kind` (a Kind or its value, e.g. a Lane) for `gateway`."""
    try:
        suffix = _KINDS[kind]
    except KeyError:
        raise TopicError(f"unknown topic kind {kind!r}", reason="kind") from None
    return f"{PREFIX}/{validate_gateway(gateway)}/{suffix.value}"


def telemetry(gateway: str) -> str:
    """Return `gw/{gateway}/telemetry`."""
    return topic(gateway, Kind.TELEMETRY)


def alerts(gateway: str) -> str:
    """Return `gw/{gateway}/alerts`."""
    return topic(gateway, Kind.ALERTS)


def status(gateway: str) -> str:
    """Return `gw/{gateway}/status` (retained; Last Will payload `OFFLINE`)."""
    return topic(gateway, Kind.STATUS)


def config(gateway: str) -> str:
    """Return `gw/{gateway}/config` (retained, cloud to gateway)."""
    return topic(gateway, Kind.CONFIG)


def config_ack(gateway: str) -> str:
    """Return `gw/{gateway}/config/ack`."""
    return topic(gateway, Kind.CONFIG_ACK)


def parse(topic_name: str) -> tuple[str, Kind]:
    """Split a concrete topic into (gateway, kind); raise TopicError on anything else."""
    parts = topic_name.split("/", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TopicError(f"not a gridwatch topic: {topic_name!r}", reason="malformed")
    _, gateway, suffix = parts
    if not is_gateway_id(gateway):
        raise TopicError(f"invalid gateway id in topic {topic_name!r}", reason="gateway")
    kind = _KINDS.get(suffix)
    if kind is None:
        raise TopicError(f"unknown topic kind in {topic_name!r}", reason="kind")
    return gateway, kind


def any_gateway(kind: Kind | str) -> str:
    """Return the subscription filter for `kind` on every gateway, e.g. `gw/+/telemetry`."""
    try:
        return f"{PREFIX}/+/{_KINDS[kind].value}"
    except KeyError:
        raise TopicError(f"unknown topic kind {kind!r}", reason="kind") from None


def own_prefix(gateway: str) -> str:
    """Return the filter a gateway's credentials may publish under: `gw/{gateway}/#`."""
    return f"{PREFIX}/{validate_gateway(gateway)}/#"


def shared(group: str, filter: str) -> str:
    """Return the shared subscription `$share/{group}/{filter}` so ingest workers split the load."""
    if _SHARE_GROUP_RE.fullmatch(group) is None:
        raise TopicError(f"invalid shared subscription group {group!r}", reason="group")
    if not filter or filter.startswith("$"):
        raise TopicError(f"invalid topic filter {filter!r}", reason="filter")
    return f"$share/{group}/{filter}"
