"""The MQTT version edge and cloud speak to their broker: a setting type in, aiomqtt session arguments out."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BeforeValidator


def _as_text(version: Any) -> Any:
    # YAML and environment overlays read `protocol: 5` as a number.
    return str(version) if isinstance(version, int | float) and not isinstance(version, bool) else version


# "5" for mosquitto and EMQX; "3.1.1" for brokers without MQTT 5 (the demo's embedded amqtt).
MqttVersion = Annotated[Literal["5", "3.1.1"], BeforeValidator(_as_text)]


def session_args(
    version: MqttVersion, *, expiry_s: int | None = None, receive_maximum: int | None = None
) -> dict[str, Any]:
    """Return aiomqtt.Client arguments for a clean session, or a persistent one when `expiry_s` is given.

    MQTT 3.1.1 has no session expiry or Receive Maximum: a persistent session there is clean_session off,
    kept until a clean connect.
    """
    persistent = expiry_s is not None
    if version == "3.1.1":
        return {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": not persistent}
    args: dict[str, Any] = {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": not persistent}
    if persistent or receive_maximum is not None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if expiry_s is not None:
            props.SessionExpiryInterval = expiry_s
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        args["properties"] = props
    return args
