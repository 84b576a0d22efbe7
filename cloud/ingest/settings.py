"""Ingest settings: broker, MQTT version, shared-subscription group, client id and batching, validated at load."""

from __future__ import annotations

from typing import Self

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.contract import MAX_ENVELOPE_BYTES
from gateway.mqtt import MqttVersion
from gateway.tls import TlsSettings
from gateway.topics import TopicError, shared


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestSettings(_Strict):
    """How one ingest worker reaches the broker and batches its writes."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = None
    # "5" for mosquitto/EMQX; "3.1.1" for brokers without MQTT 5 (the demo's embedded amqtt), where the
    # worker keeps a persistent session with clean_session off instead of a session expiry.
    protocol: MqttVersion = "5"
    # Workers of one group split the gateways' messages ($share/{group}/...). None: a plain subscription
    # `gw/+/...` for a single worker (the only choice with 3.1.1, which has no shared subscriptions).
    group: str | None = "ingest"
    # Stable per worker: the broker keeps this worker's session (and its unacknowledged messages) under it.
    client_id: str = Field(default="ingest-1", min_length=1, max_length=128)
    # The broker keeps sharing messages to a stopped member of the group (mosquitto queues its share in the
    # session) and drops that queue when the session expires. Long, so a worker down for hours loses
    # nothing; retire a worker slot only after starting it once more to drain.
    session_expiry_s: int = Field(default=86_400, ge=1)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    # Unacknowledged messages the broker may send at once (MQTT 5 Receive Maximum; mosquitto also caps
    # it with max_inflight_messages). A batch can never hold more envelopes than this.
    receive_maximum: int = Field(default=256, ge=1, le=65535)
    # A chunk of messages goes to decoding when its payloads reach this many bytes (a 1000-reading envelope
    # is ~60 kB, so the default is ~17k readings; bytes, because readings are counted only once decoded) or
    # its first message is this old. The writer stores all decoded chunks waiting in one transaction.
    batch_max_bytes: int = Field(default=1024 * 1024, ge=1)
    batch_max_delay_s: float = Field(default=0.05, gt=0)
    # Processes that decode envelopes while the writer thread stores the previous chunk. None: one per core
    # beyond the writer's (at most four); 0 decodes in the writer thread (one core, or many small workers).
    decode_processes: int | None = Field(default=None, ge=0, le=64)
    max_envelope_bytes: int = Field(default=MAX_ENVELOPE_BYTES, ge=1024, le=16 * 1024 * 1024)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)

    @field_validator("group")
    @classmethod
    def _group(cls, group: str | None) -> str | None:
        if group is None:
            return None
        try:
            shared(group, "gw/+/telemetry")
        except TopicError as exc:
            raise ValueError(str(exc)) from exc
        return group

    @model_validator(mode="after")
    def _group_needs_mqtt5(self) -> Self:
        if self.protocol == "3.1.1" and self.group is not None:
            raise ValueError(
                f"group: shared subscriptions ($share/{self.group}/...) need MQTT 5, but protocol is 3.1.1; "
                "set group to null (one worker, plain subscription) or use an MQTT 5 broker"
            )
        return self

    def client(self, suffix: str) -> aiomqtt.Client:
        """A plain client of the cloud's broker account, identified as `<client_id>-<suffix>`."""
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password.get_secret_value() if self.password is not None else None,
            identifier=f"{self.client_id}-{suffix}",
            tls_context=self.tls.context() if self.tls is not None else None,
            timeout=self.connect_timeout_s,
            keepalive=self.keepalive_s,
        )
