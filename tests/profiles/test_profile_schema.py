"""Profile validation: unknown keys and broken cross-references stop loading with the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from device_profiles import ProfileError, load_profile, load_profiles
from device_profiles.loader import parse_profile
from device_profiles.schema import ThresholdRule, parse_duration


def gas_profile() -> dict[str, Any]:
    """Return a minimal valid Modbus gas-detector profile document."""
    return {
        "name": "gas-test",
        "read": {
            "transport": "modbus",
            "decoder": "modbus",
            "modbus": {"registers": [{"name": "gas", "address": 0, "type": "uint16", "scale": 0.1}]},
        },
        "measures": [{"source": "gas", "quantity": "gas_lel", "unit": "%LEL", "valid_range": [0, 100]}],
        "rules": [
            {
                "name": "gas_level",
                "kind": "threshold",
                "quantity": "gas_lel",
                "levels": [{"severity": 1, "above": 25}, {"severity": 2, "above": 50}],
                "for": "2s",
                "clear_for": "10s",
            }
        ],
    }


def test_valid_profile_loads_with_durations_in_seconds() -> None:
    """A valid document loads, and `for`/`clear_for` strings become seconds."""
    profile = parse_profile(gas_profile(), "gas-test.yaml")
    rule = profile.rules[0]
    assert isinstance(rule, ThresholdRule)
    assert (rule.for_, rule.clear_for) == (2.0, 10.0)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["read"]["modbus"]["registers"][0].update(colour="red"),
            "read.modbus.registers[0].colour",
        ),
        (lambda d: d["read"]["modbus"]["registers"][0].update(type="int64"), "read.modbus.registers[0].type"),
        (lambda d: d["measures"][0].update(quantity="gas"), "measures[0]"),
        (lambda d: d["measures"][0].update(unit="ppm"), "measures[0]"),
        (lambda d: d["measures"][0].update(source="nope"), "source 'nope' is not read"),
        (lambda d: d["rules"][0].update(quantity="pressure"), "needs pressure"),
        (lambda d: d["rules"][0]["levels"][0].update(below=3), "rules[0].levels[0]"),
        (lambda d: d["rules"][0].update(kind="magic"), "rules[0]"),
        (lambda d: d["rules"][0].update({"for": "soon"}), "rules[0].for"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["read"].update(decoder="nmea"), "cannot be read over 'modbus'"),
    ],
)
def test_invalid_profile_names_the_key_path(mutate: Any, expected: str) -> None:
    """Each kind of mistake is refused with a message naming where it is."""
    doc = gas_profile()
    mutate(doc)
    with pytest.raises(ProfileError) as info:
        parse_profile(doc, "gas-test.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("gas-test.yaml: ")


def test_decimals_register_must_exist() -> None:
    """A decimals register that is not in the map is a cross-reference error."""
    doc = gas_profile()
    doc["read"]["modbus"]["registers"][0]["decimals_register"] = "dp"
    with pytest.raises(ProfileError, match="decimals_register 'dp'"):
        parse_profile(doc, "gas-test.yaml")


def test_file_name_must_match_profile_name(tmp_path: Path) -> None:
    """A profile's name is its file name, so references to it cannot drift."""
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(gas_profile()), encoding="utf-8")
    with pytest.raises(ProfileError, match="must match the file name"):
        load_profile(path)


def test_directory_errors_are_all_reported(tmp_path: Path) -> None:
    """Loading a directory reports every bad file, not just the first."""
    (tmp_path / "a.yaml").write_text("name: a\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text(": [\n", encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profiles([tmp_path])
    assert "a.yaml" in str(info.value)
    assert "b.yaml" in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"), [("3s", 3.0), ("250ms", 0.25), ("10m", 600.0), ("1.5h", 5400.0), (7, 7.0)]
)
def test_durations(text: object, seconds: float) -> None:
    """Durations accept numbers of seconds and unit suffixes."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1s", "3 weeks", True, None])
def test_bad_durations(text: object) -> None:
    """Negative, unknown-unit and non-numeric durations are refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
