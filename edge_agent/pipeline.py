"""The edge pipeline: source chunks in; decoded, normalized, judged readings and alerts into the buffer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_agent.buffer import DurableBuffer
from edge_agent.config import DeviceSpec
from edge_agent.decode.base import Decoder, DecodeStats
from edge_agent.decode.factory import make_decoder
from edge_agent.intake import Chunk
from edge_agent.normalize import Calibration, Normalizer
from edge_agent.rules import RuleEngine
from gateway.alerts import AlertEvent
from gateway.readings import Reading

# Decoder outcomes that are not errors; everything else counts toward a device's decode-error rate.
_GOOD_OUTCOMES = frozenset(
    {"sentences", "frames", "items", "messages", "samples", "epochs", "command", "fixes", "ignored", "no_fix"}
)


@dataclass(slots=True)
class DeviceState:
    """One device's decoder and normalizer."""

    decoder: Decoder
    normalizer: Normalizer


@dataclass(slots=True)
class Rate:
    """An exponentially weighted rate of items per second over event batches."""

    per_s: float = 0.0
    last_ms: int | None = None
    half_life_s: float = 30.0

    def add(self, count: int, now_ms: int) -> None:
        """Account `count` items seen at `now_ms`."""
        if self.last_ms is None:
            self.last_ms = now_ms
            return
        dt = max((now_ms - self.last_ms) / 1000.0, 1e-3)
        weight = 0.5 ** (dt / self.half_life_s)
        self.per_s = weight * self.per_s + (1 - weight) * (count / dt)
        self.last_ms = now_ms


@dataclass(slots=True)
class PipelineCounters:
    """What the pipeline has done since start."""

    readings: int = 0
    alerts: int = 0
    unknown_device: int = 0
    ingress: Rate = field(default_factory=Rate)


class Pipeline:
    """Decode, normalize, judge and store every chunk, one buffer transaction per batch of chunks."""

    def __init__(self, specs: Sequence[DeviceSpec], buffer: DurableBuffer, engine: RuleEngine) -> None:
        self.buffer = buffer
        self.engine = engine
        self.counters = PipelineCounters()
        self.devices: dict[str, DeviceState] = {}
        for spec in specs:
            calibration = {q: Calibration(gain=c.gain, offset=c.offset) for q, c in spec.device.calibration.items()}
            self.devices[spec.device.id] = DeviceState(
                decoder=make_decoder(spec.profile),
                normalizer=Normalizer(spec.device.id, spec.measures, calibration),
            )
            engine.add_device(spec.device.id, spec.rules, spec.device.place.location())

    def process(self, chunks: Sequence[Chunk]) -> tuple[list[Reading], list[AlertEvent]]:
        """Run `chunks` through the pipeline, store the results durably, then resolve `stored` futures."""
        readings: list[Reading] = []
        for chunk in chunks:
            state = self.devices.get(chunk.device)
            if state is None:
                self.counters.unknown_device += 1
                continue
            data = chunk.data
            samples = state.decoder.feed(data, chunk.now_ms) if isinstance(data, bytes) else data
            readings.extend(state.normalizer.normalize(samples, chunk.now_ms))
        alerts: list[AlertEvent] = []
        observe = self.engine.observe
        for reading in readings:
            alerts.extend(observe(reading))
        self.store(readings, alerts)
        if chunks:
            self.counters.ingress.add(len(readings), chunks[-1].now_ms)
        for chunk in chunks:
            if chunk.stored is not None and not chunk.stored.done():
                chunk.stored.set_result(None)
        return readings, alerts

    def tick(self, now_ms: int) -> list[AlertEvent]:
        """Evaluate time-driven rules (no data) at `now_ms` and store what they raise."""
        alerts = self.engine.tick(now_ms)
        self.store([], alerts)
        return alerts

    def store(self, readings: Sequence[Reading], alerts: Sequence[AlertEvent]) -> None:
        """Put readings and alerts into the durable buffer (alerts first: they matter most)."""
        if alerts:
            self.buffer.put_alerts(alerts)
            self.counters.alerts += len(alerts)
        if readings:
            self.buffer.put_readings(readings)
            self.counters.readings += len(readings)

    def decode_errors(self) -> dict[str, dict[str, int]]:
        """Return the non-zero error outcomes of every device's decoder and normalizer."""
        out: dict[str, dict[str, int]] = {}
        for device, state in self.devices.items():
            errors = _errors(state.decoder.stats) | _errors(state.normalizer.stats)
            if errors:
                out[device] = errors
        return out


def _errors(stats: DecodeStats) -> dict[str, int]:
    """Return the error outcomes of a stats counter."""
    return {k: v for k, v in stats.counts.items() if v and k not in _GOOD_OUTCOMES}
