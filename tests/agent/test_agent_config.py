"""Agent configuration: the shipped sample loads, and every mistake stops start-up naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from device_profiles.schema import ThresholdRule
from edge_agent.config import ConfigError, load_config, parse_size

SAMPLE = Path(__file__).resolve().parents[2] / "edge_agent" / "agent.example.yaml"


def sample() -> dict[str, Any]:
    """Return the sample configuration as a document to mutate."""
    data = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    """Write a configuration document to a file and return its path."""
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_sample_config_loads_and_applies_overrides() -> None:
    """The commented sample is valid, and its per-device overrides reach the effective rules."""
    config, specs = load_config(SAMPLE)
    assert config.gateway.id == "gw-office-1"
    by_id = {s.device.id: s for s in specs}
    rule = next(r for r in by_id["pressure-7"].rules if r.name == "mains_pressure_low")
    assert isinstance(rule, ThresholdRule)
    assert rule.for_ == 30.0
    air = by_id["air-1"]
    pm = next(m for m in air.measures if m.quantity == "pm2_5")
    assert pm.valid_range == (0.0, 1000.0)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(colour="red"), "colour: unknown key"),
        (lambda d: d["uplink"].update(hots="x"), "uplink.hots: unknown key"),
        (lambda d: d["devices"][1].update(slave=999), "devices[1].slave"),
        (lambda d: d["devices"][1].update(profile="nope"), "devices[1].profile: unknown profile 'nope'"),
        (lambda d: d["devices"][1].pop("slave"), "devices[1].slave: a Modbus device needs its slave id"),
        (lambda d: d["devices"][1].update(port="com9"), "devices[1].port"),
        (lambda d: d["devices"][2]["rules"].update(nope={"for": "1s"}), "has no rule nope"),
        (lambda d: d["devices"][2]["rules"]["mains_pressure_low"].update({"for": "soon"}), "for"),
        (lambda d: d["devices"][4]["measures"].update(tilt={"scale": 2}), "does not measure tilt"),
        (lambda d: d["devices"][3].pop("topic"), "devices[3].topic"),
        (lambda d: d["buffer"].update(max_bytes="lots"), "buffer.max_bytes"),
        (lambda d: d["gateway"].update(id="GW/1"), "gateway.id"),
        (lambda d: d["devices"].append(dict(d["devices"][0])), "duplicate names gnss-1"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, mutate: Any, expected: str) -> None:
    """Each mistake is refused at load with a message that names where it is."""
    doc = sample()
    mutate(doc)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, doc))
    assert expected in str(info.value)


def test_rule_can_be_disabled_per_device(tmp_path: Path) -> None:
    """`enabled: false` drops one default rule for one device."""
    doc = sample()
    doc["devices"][2]["rules"] = {"mains_pressure_low": {"enabled": False}}
    _, specs = load_config(write(tmp_path, doc))
    assert "mains_pressure_low" not in {r.name for r in specs[2].rules}


@pytest.mark.parametrize(("text", "size"), [("256MiB", 256 * 2**20), ("1GB", 10**9), (4096, 4096), ("10 kB", 10_000)])
def test_sizes(text: object, size: int) -> None:
    """Byte sizes accept plain numbers and SI or binary suffixes."""
    assert parse_size(text) == size
