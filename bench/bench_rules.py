"""Benchmark the edge rule engine: synthetic readings of realistic profiles in, readings/s out."""

from __future__ import annotations

import random
import time

from device_profiles.schema import NoDataRule, ThresholdRule
from edge_agent.rules import Rule, RuleEngine
from gateway.alerts import Location
from gateway.readings import Reading

T0 = 1_700_000_000_000
DEVICES = 1000
READINGS = 200_000
KINDS = ("gas_lel", "pressure", "tilt")


def profile_rules() -> dict[str, list[Rule]]:
    """Return the rules of three sensor kinds: gas (two levels), pipe pressure (below), tilt (for 3 s)."""
    silent = NoDataRule.model_validate({"kind": "no_data", "name": "silent", "after": "5m"})
    gas = ThresholdRule.model_validate(
        {
            "kind": "threshold",
            "name": "gas_high",
            "quantity": "gas_lel",
            "levels": [{"severity": 1, "above": 25}, {"severity": 2, "above": 50}],
            "clear_for": "30s",
        }
    )
    pressure = ThresholdRule.model_validate(
        {
            "kind": "threshold",
            "name": "pressure_low",
            "quantity": "pressure",
            "levels": [{"severity": 2, "below": 0.14}],
        }
    )
    tilt = ThresholdRule.model_validate(
        {
            "kind": "threshold",
            "name": "tilt",
            "quantity": "tilt",
            "levels": [{"severity": 3, "above": 10}],
            "for": "3s",
        }
    )
    return {"gas_lel": [gas, silent], "pressure": [pressure, silent], "tilt": [tilt, silent]}


def build_engine() -> RuleEngine:
    """Return an engine of DEVICES devices, a third of each sensor kind."""
    engine = RuleEngine("gw-bench")
    kinds = profile_rules()
    for i in range(DEVICES):
        engine.add_device(f"dev{i}", kinds[KINDS[i % 3]], Location(grid=f"g{i % 189}"))
    return engine


def workload(seed: int = 7) -> list[Reading]:
    """Return READINGS readings round-robin over the devices, 1 % of them near or beyond a limit."""
    rng = random.Random(seed)
    units = {"gas_lel": "%LEL", "pressure": "MPa", "tilt": "deg"}
    normal = {"gas_lel": (0.0, 10.0), "pressure": (0.2, 0.4), "tilt": (0.0, 5.0)}
    alarm = {"gas_lel": (20.0, 70.0), "pressure": (0.05, 0.2), "tilt": (5.0, 20.0)}
    readings = []
    for n in range(READINGS):
        i = n % DEVICES
        quantity = KINDS[i % 3]
        low, high = alarm[quantity] if rng.random() < 0.01 else normal[quantity]
        readings.append(Reading(f"dev{i}", quantity, rng.uniform(low, high), units[quantity], T0 + n))
    return readings


def main(repeats: int = 5) -> None:
    """Run the benchmark `repeats` times on fresh engines; print the best CPU time per reading."""
    readings = workload()
    best = float("inf")
    events = 0
    for _ in range(repeats):
        engine = build_engine()
        observe = engine.observe
        events = 0
        # CPU time, not wall time: the bench machine is shared, and scheduling noise is not our cost.
        start = time.process_time()
        for reading in readings:
            events += len(observe(reading))
        best = min(best, time.process_time() - start)
    start = time.process_time()
    for k in range(10):
        engine.tick(T0 + READINGS + k * 1000)
    tick_ms = (time.process_time() - start) / 10 * 1000
    per = best / len(readings)
    print(f"rules.observe: {1 / per:,.0f} readings/s, {per * 1e6:.2f} µs/reading (best of {repeats})")
    print(f"  {DEVICES} devices, 2 rules each (threshold + no_data), {events} alert events per run")
    print(f"rules.tick: {tick_ms:.2f} ms for {DEVICES} devices")


if __name__ == "__main__":
    main()
