"""The 立案结案标准 table: the sample loads and agrees with the directory; bad tables name the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.grid import default_directory
from cloud.incidents.model import Recovery, Urgency
from cloud.incidents.standards import DEFAULT_PATH, REQUIRED_STEPS, Standards, StandardsError, parse_duration_ms
from cloud.worktime import Clock, default_calendar

STANDARDS = Standards.load()
H = 3_600_000


def test_every_category_and_urgency_has_a_rule() -> None:
    """Each category of the sample has a complete rule at all three urgencies."""
    for category in STANDARDS.categories():
        for urgency in Urgency:
            rule = STANDARDS.rule(category, urgency)
            assert (rule.category, rule.urgency) == (category, urgency)
            assert set(REQUIRED_STEPS) <= set(rule.steps)
            assert all(0 < v <= rule.overall_ms for v in rule.steps.values())


def test_categories_agree_with_the_directory() -> None:
    """The standards table and the department directory name the same categories."""
    assert set(STANDARDS.categories()) == set(default_directory().categories())


def test_urgency_accepts_chinese_names() -> None:
    """一般 / 紧急 / 非常紧急 select the same rules as normal / urgent / critical."""
    assert STANDARDS.rule("garbage", "一般") == STANDARDS.rule("garbage", "normal")
    assert STANDARDS.rule("garbage", "非常紧急") == STANDARDS.rule("garbage", Urgency.CRITICAL)
    with pytest.raises(StandardsError, match="unknown urgency 'asap'"):
        STANDARDS.rule("garbage", "asap")
    with pytest.raises(StandardsError, match="no standard for category 'ufo'"):
        STANDARDS.rule("ufo", "normal")


def test_more_urgent_means_less_time() -> None:
    """Within each category, critical allows no more time than urgent, nor urgent than normal."""
    for category in STANDARDS.categories():
        critical, urgent, normal = (STANDARDS.rule(category, u).overall_ms for u in ("critical", "urgent", "normal"))
        assert critical <= urgent <= normal, category


def test_policies_of_the_sample() -> None:
    """Safety categories run on natural time; water level, noise and dust close on the sensor; health is not a case."""
    for category in ("gas_leak", "tunnel_gas", "water_pressure", "manhole_cover", "drainage_overflow"):
        assert STANDARDS.rule(category, "normal").clock_mode is Clock.NATURAL
    assert STANDARDS.rule("garbage", "normal").clock_mode is Clock.WORK
    for category in ("drainage_overflow", "noise", "air_quality"):
        rule = STANDARDS.rule(category, "urgent")
        assert rule.recovery is Recovery.SENSOR_SUFFICIENT
        assert rule.stable_for_ms > 0
        assert rule.veto_ms > 0
    gas = STANDARDS.rule("gas_leak", "critical")
    assert gas.recovery is Recovery.HUMAN_CHECK_REQUIRED
    assert (gas.stable_for_ms, gas.veto_ms) == (0, 0)
    assert gas.open311_hidden
    assert not gas.self_handling
    health = STANDARDS.rule("device_health", "normal")
    assert health.recovery is Recovery.DEVICE_HEALTH
    assert not health.is_governance
    assert not health.open311_service
    assert STANDARDS.rule("garbage", "normal").self_handling


def test_escalation_defaults_and_overrides() -> None:
    """Categories inherit the default escalation unless they list their own."""
    road = STANDARDS.rule("road_damage", "normal").escalation
    assert [(e.trigger, e.action) for e in road] == [
        ("sign_overdue", "escalate"),
        ("yellow", "notify"),
        ("red", "supervise"),
    ]
    assert "shift_lead" in road[0].notify
    gas = STANDARDS.rule("gas_leak", "urgent").escalation
    assert any(e.trigger == "step_overdue" and e.step == "accept" for e in gas)


def test_traffic_light_at_80_and_100_percent() -> None:
    """The light turns yellow at 80 % and red at 100 % of the allowed time."""
    rule = STANDARDS.rule("gas_leak", "critical")
    allowed = rule.overall_ms
    assert rule.light(0) == "green"
    assert rule.light(int(allowed * 0.8) - 1) == "green"
    assert rule.light(int(allowed * 0.8)) == "yellow"
    assert rule.light(allowed - 1) == "yellow"
    assert rule.light(allowed) == "red"
    assert rule.light(30 * 60_000, allowed_ms=rule.steps["handle"] // 4) == "red"


def test_deadlines_follow_the_category_clock() -> None:
    """A natural-clock overall limit ends in natural time; a work-clock one skips the weekend."""
    calendar = default_calendar()
    friday_16h = 1_772_784_000_000  # 2026-03-06 16:00 Asia/Shanghai
    gas = STANDARDS.rule("gas_leak", "critical")
    assert calendar.due(friday_16h, gas.overall_ms, gas.clock_mode) == friday_16h + 4 * H
    noise = STANDARDS.rule("noise", "critical")
    deadline = calendar.due(friday_16h, noise.overall_ms, noise.clock_mode)
    assert calendar.elapsed(friday_16h, deadline, "work") == noise.overall_ms
    assert deadline - friday_16h > 60 * H  # Monday


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30s", 30_000), ("15m", 900_000), ("1h30m", 5_400_000), ("7.5h", 27_000_000), ("3d", 259_200_000), (90, 90_000)],
)
def test_parse_duration(text: object, ms: int) -> None:
    """Durations are written with s/m/h/d units, combined, decimal, or as plain seconds."""
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "15", "1w", "h", "-5m", "0m", "1h 30x", True, None])
def test_parse_duration_refuses_garbage(text: object) -> None:
    """Anything else is a ValueError."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(text)


def variant(tmp_path: Path, edit: Any) -> Path:
    """Write the sample table after `edit(doc)`; return its path."""
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    edit(doc)
    path = tmp_path / "standards.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["categories"]["noise"].update(colour=1), r"categories\.noise\.colour: Extra inputs"),
        (lambda d: d["categories"]["noise"]["limits"].pop("urgent"), r"categories\.noise\.limits: .*missing.*urgent"),
        (
            lambda d: d["categories"]["garbage"]["limits"].update(
                normal={**d["templates"]["work_normal"], "sign": "99h"}
            ),
            r"categories\.garbage\.limits\.normal: .*'sign' is longer than 'overall'",
        ),
        (
            lambda d: d["categories"]["noise"].update(recovery={"policy": "sensor_sufficient"}),
            r"categories\.noise\.recovery: .*needs 'stable_for' and 'veto_window'",
        ),
        (
            lambda d: d["categories"]["gas_leak"].update(
                recovery={"policy": "human_check_required", "stable_for": "1h"}
            ),
            r"categories\.gas_leak\.recovery: .*apply only to sensor_sufficient",
        ),
        (
            lambda d: d["categories"]["road_damage"]["limits"]["normal"].update(handle="soon"),
            r"categories\.road_damage\.limits\.normal\.handle: .*not a duration",
        ),
        (
            lambda d: d["categories"]["road_damage"]["limits"]["normal"].pop("register"),
            r"categories\.road_damage\.limits\.normal\.register: Field required",
        ),
        (
            lambda d: d["defaults"].update(thresholds={"yellow_at": 1.0, "red_at": 0.8}),
            r"defaults\.thresholds: .*below",
        ),
        (lambda d: d["defaults"]["escalation"][0].update(notify=["mayor"]), r"defaults\.escalation\.0\.notify\.0"),
        (lambda d: d["categories"]["road_damage"].update(clock="lunar"), r"categories\.road_damage\.clock"),
        (lambda d: d["categories"].update({"Bad-Name": d["categories"]["noise"]}), r"categories\.Bad-Name"),
        (lambda d: d.update(version=2), r"version: Input should be 1"),
    ],
)
def test_bad_tables_name_the_key_path(tmp_path: Path, edit: Any, message: str) -> None:
    """A table that does not validate is refused with the file and the key path in the message."""
    path = variant(tmp_path, edit)
    with pytest.raises(StandardsError, match=message):
        Standards.load(path)


def test_unreadable_table_is_a_standards_error(tmp_path: Path) -> None:
    """A missing or unparsable file raises StandardsError naming it."""
    with pytest.raises(StandardsError, match=r"nope\.yaml: cannot read"):
        Standards.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n", encoding="utf-8")
    with pytest.raises(StandardsError, match=r"bad\.yaml: cannot read YAML"):
        Standards.load(bad)


def test_describe_returns_the_entry_as_written() -> None:
    """describe() exposes names and Open311 flags for the services list."""
    entry = STANDARDS.describe("drainage_overflow")
    assert entry.name == "排水井满溢、道路积水"
    assert entry.open311.service
    with pytest.raises(StandardsError):
        STANDARDS.describe("ufo")
