"""Normalizer: decoded samples in, canonical readings out (quantity, unit, scale, calibration, quality)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from device_profiles.schema import Measure
from device_profiles.vocabulary import COMPANION_SUFFIXES, quantity_spec
from edge_agent.decode.base import DecodeStats, Sample
from gateway.readings import Quality, Reading, Reason

# HJ 212 data flags: only N (normal) is good data; every other flag marks the value unusable.
GOOD_FLAGS = frozenset({"N"})


@dataclass(frozen=True, slots=True)
class Calibration:
    """A per-device correction applied after the profile's scaling: value × gain + offset."""

    gain: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class _Target:
    """Everything needed to turn one source key into one reading, resolved once."""

    quantity: str
    unit: str
    factor: float
    offset: float
    low: float
    high: float


def _bounds(measure: Measure, quantity: str) -> tuple[float, float]:
    """Intersect the physical limits of a quantity with the measure's valid range."""
    spec = quantity_spec(quantity)
    low = -math.inf if spec is None or spec.low is None else spec.low
    high = math.inf if spec is None or spec.high is None else spec.high
    if measure.valid_range is not None:
        low, high = max(low, measure.valid_range[0]), min(high, measure.valid_range[1])
    return low, high


class Normalizer:
    """Map one device's samples onto canonical readings; count what cannot be mapped or trusted."""

    def __init__(
        self,
        device: str,
        measures: Sequence[Measure],
        calibration: Mapping[str, Calibration] | None = None,
    ) -> None:
        self.device = device
        self.stats = DecodeStats()
        self._targets: dict[str, _Target] = {}
        calibration = calibration or {}
        for measure in measures:
            cal = calibration.get(measure.quantity, Calibration())
            # Period data carries `_min`/`_max` companions of a source; they map onto the same quantity.
            for suffix in ("", *COMPANION_SUFFIXES):
                quantity = measure.quantity + suffix
                low, high = _bounds(measure, quantity)
                self._targets[measure.source + suffix] = _Target(
                    quantity=quantity,
                    unit=measure.unit,
                    factor=measure.factor * cal.gain,
                    offset=measure.offset * cal.gain + cal.offset,
                    low=low,
                    high=high,
                )

    def normalize(self, samples: Iterable[Sample], now_ms: int) -> list[Reading]:
        """Return the readings of `samples`; a sample without a device time is stamped `now_ms`."""
        out: list[Reading] = []
        targets = self._targets
        count = self.stats.add
        for sample in samples:
            target = targets.get(sample.key)
            if target is None:
                count("unmapped")
                continue
            value = sample.value * target.factor + target.offset
            if not math.isfinite(value):
                # NaN and infinity cannot travel in JSON and mean nothing downstream: count, don't emit.
                count("not_a_number")
                continue
            quality = Quality.GOOD
            reason: Reason | None = None
            if sample.flag is not None and sample.flag not in GOOD_FLAGS:
                quality, reason = Quality.BAD, Reason.INSTRUMENT_FLAG
            elif not target.low <= value <= target.high:
                quality, reason = Quality.BAD, Reason.OUT_OF_RANGE
            elif sample.stale:
                quality, reason = Quality.SUSPECT, Reason.STALE
            elif sample.clock_suspect:
                quality, reason = Quality.SUSPECT, Reason.CLOCK
            if reason is not None:
                count(reason.value)
            ts_ms = now_ms if sample.ts_ms is None else sample.ts_ms
            out.append(Reading(self.device, target.quantity, value, target.unit, ts_ms, quality, reason))
        return out
