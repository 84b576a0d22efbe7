"""Scenario values through a device profile: canonical quantities in, device values per source key out."""

from __future__ import annotations

from collections.abc import Iterable

from device_profiles import Measure, Profile
from simulators.errors import SimulatorError
from simulators.faults import Faults
from simulators.scenario import Scenario


def device_value(measure: Measure, canonical: float) -> float:
    """Invert a measure: what the device reports for a canonical value (canonical = v·factor + offset)."""
    return (canonical - measure.offset) / measure.factor


def measures_by_source(profile: Profile, sources: Iterable[str]) -> dict[str, Measure]:
    """Return the measure of each source key that the profile measures (others are left out)."""
    wanted = set(sources)
    return {m.source: m for m in profile.measures if m.source in wanted}


def check_scenario(profile: Profile, measures: Iterable[Measure], values: Scenario) -> None:
    """Raise SimulatorError when the scenario cannot give a quantity the device reports."""
    missing = sorted({m.quantity for m in measures if not values.has(m.quantity)})
    if missing:
        raise SimulatorError(
            f"scenario {values.name!r} gives no value for {', '.join(missing)} (profile {profile.name!r})"
        )


def device_values(
    measures: dict[str, Measure], values: Scenario, t: float, faults: Faults | None = None
) -> dict[str, float]:
    """Return each source's device value at scenario time `t`, after value faults (drift, spikes)."""
    out = {}
    for source, measure in measures.items():
        value = device_value(measure, values.value(measure.quantity, t))
        out[source] = faults.value(value, t) if faults is not None else value
    return out
