"""Golden checks of the bundled device profiles: each loads, is documented, and its rules are consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles import BUNDLED_DIR, load_profile, load_profiles
from device_profiles.loader import profile_files
from device_profiles.schema import GeofenceRule, NoDataRule, Profile, RateRule, ThresholdRule
from edge_agent.decode.factory import make_decoder
from edge_agent.decode.modbus import decimals_registers, plan_reads

FILES = profile_files(BUNDLED_DIR)
GOLDEN = Path(__file__).resolve().parents[1] / "golden"

# Limits taken from the standards the profiles cite: (profile, rule) -> {severity: limit}.
STANDARD_LIMITS = {
    ("water-pressure-modbus", "mains_pressure_low"): {1: 0.14},  # CJ/T 316-2009
    ("gas-detector-modbus", "combustible_gas"): {1: 25.0, 2: 50.0},  # GB/T 50493-2019
    ("tunnel-gas-modbus", "tunnel_gas"): {1: 20.0, 2: 25.0},  # GB 50838-2015
    ("manhole-tilt-mqtt", "cover_tilted"): {1: 10.0},
}


def test_bundled_profiles_all_load() -> None:
    """load_profiles() reads every bundled file without error, one profile per file."""
    profiles = load_profiles()
    assert sorted(profiles) == sorted(p.stem for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_profile_loads_and_is_commented(path: Path) -> None:
    """Each profile loads on its own, is named after its file and opens with an explanatory comment."""
    profile = load_profile(path)
    assert profile.name == path.stem
    assert path.read_text(encoding="utf-8").lstrip().startswith("#")
    assert profile.description


def rule_quantities(profile: Profile) -> set[str]:
    """Return the quantities the profile's rules need."""
    needed: set[str] = set()
    for rule in profile.rules:
        if isinstance(rule, ThresholdRule | RateRule):
            needed.add(rule.quantity)
        elif isinstance(rule, NoDataRule) and rule.quantity is not None:
            needed.add(rule.quantity)
        elif isinstance(rule, GeofenceRule):
            needed |= {"latitude", "longitude"}
    return needed


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_rules_reference_measured_quantities(path: Path) -> None:
    """Every quantity a rule judges is measured by the profile, and every measure's source is read."""
    profile = load_profile(path)
    assert rule_quantities(profile) <= {m.quantity for m in profile.measures}
    sources = profile.read.source_keys()
    if sources is not None:
        assert {m.source for m in profile.measures} <= sources


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_decoder_builds(path: Path) -> None:
    """The factory builds the decoder each profile names."""
    decoder = make_decoder(load_profile(path))
    assert decoder.stats.counts == {}


MODBUS = [p for p in FILES if load_profile(p).read.decoder == "modbus"]


@pytest.mark.parametrize("path", MODBUS, ids=[p.stem for p in MODBUS])
def test_modbus_map_plans_and_every_value_is_measured(path: Path) -> None:
    """A Modbus map plans into reads, and each emitted register (not decimals ones) has a measure."""
    profile = load_profile(path)
    modbus = profile.read.modbus
    assert modbus is not None
    assert plan_reads(modbus)
    emitted = {r.name for r in modbus.registers} - decimals_registers(modbus)
    assert emitted == {m.source for m in profile.measures}


@pytest.mark.parametrize(("key", "limits"), STANDARD_LIMITS.items(), ids=[k[1] for k in STANDARD_LIMITS])
def test_standard_limits(key: tuple[str, str], limits: dict[int, float]) -> None:
    """Rules that cite a standard use its limits at the stated severities."""
    profile = load_profile(BUNDLED_DIR / f"{key[0]}.yaml")
    (rule,) = [r for r in profile.rules if r.name == key[1]]
    assert isinstance(rule, ThresholdRule)
    assert {lv.severity: lv.above if lv.above is not None else lv.below for lv in rule.levels} == limits


def test_rule_holds_from_the_brief() -> None:
    """The manhole tilt fires after 3 s held, and gas alarms hold briefly but clear with hysteresis."""
    tilt = load_profile(BUNDLED_DIR / "manhole-tilt-mqtt.yaml")
    (cover,) = [r for r in tilt.rules if r.name == "cover_tilted"]
    assert isinstance(cover, ThresholdRule)
    assert cover.for_ == 3.0
    gas = load_profile(BUNDLED_DIR / "gas-detector-modbus.yaml")
    (alarm,) = [r for r in gas.rules if isinstance(r, ThresholdRule)]
    assert alarm.for_ < alarm.clear_for


MINE = [
    "water-pressure-modbus",
    "drainage-level-modbus",
    "gas-detector-modbus",
    "tunnel-gas-modbus",
    "flowmeter-modbus",
    "manhole-tilt-mqtt",
    "temp-humidity-mqtt",
]


@pytest.mark.parametrize("name", MINE)
def test_field_profiles_have_golden_cases(name: str) -> None:
    """Each pipe-network and MQTT profile has a golden decode folder with an input and expected samples."""
    assert (GOLDEN / name / "expected.jsonl").is_file()
    assert list((GOLDEN / name).glob("input.*"))
