"""Ingest: gateway envelopes from MQTT in; series, alerts and liveness applied exactly once out.

Modules: settings (IngestSettings), admit (one message -> a Verdict, sans-I/O; `gate` adds the directory
check later), decoders (processes decoding chunks of messages off the writer's core), ledger (applied seqs
per gateway: watermark + bounded window), apply (one batch -> store, alert sink, ledger; why it is exactly
once), worker (the MQTT runner), ports (the seams and small defaults), counters (/metrics samples).
"""

from cloud.ingest.counters import REJECT_REASONS, IngestCounters
from cloud.ingest.ledger import Ledger, MemoryLedger, SqlLedger
from cloud.ingest.ports import (
    AlertSink,
    CountingAlertSink,
    GatewayDirectory,
    LivenessSink,
    RecordingAlertSink,
    RecordingLiveness,
    StaticDirectory,
)
from cloud.ingest.settings import IngestSettings
from cloud.ingest.worker import IngestError, IngestWorker
from gateway.tls import TlsSettings

__all__ = [
    "REJECT_REASONS",
    "AlertSink",
    "CountingAlertSink",
    "GatewayDirectory",
    "IngestCounters",
    "IngestError",
    "IngestSettings",
    "IngestWorker",
    "Ledger",
    "LivenessSink",
    "MemoryLedger",
    "RecordingAlertSink",
    "RecordingLiveness",
    "SqlLedger",
    "StaticDirectory",
    "TlsSettings",
]
