"""Work-time deadline arithmetic on the 2026 calendar: weekends, holidays, 调休, lunch, off-hours, properties."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.worktime import CalendarError, Clock, WorkCalendar, default_calendar, due, elapsed, load_calendar

SH = ZoneInfo("Asia/Shanghai")
CAL = default_calendar()
H = 3_600_000
M = 60_000


def at(text: str) -> int:
    """Return UTC ms of a Shanghai local 'YYYY-MM-DD HH:MM'."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SH).timestamp() * 1000)


def local(ms: int) -> str:
    """Return the Shanghai local 'YYYY-MM-DD HH:MM' of UTC ms."""
    return datetime.fromtimestamp(ms / 1000, tz=SH).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("start", "duration_ms", "expected"),
    [
        ("2026-03-10 09:00", 1 * H, "2026-03-10 10:00"),  # plain Tuesday morning
        ("2026-03-10 11:00", 2 * H, "2026-03-10 14:30"),  # across the lunch break
        ("2026-03-10 12:00", 0, "2026-03-10 12:00"),  # nothing to add
        ("2026-03-10 11:00", 1 * H, "2026-03-10 12:00"),  # ends exactly at the break, not after it
        ("2026-03-10 07:00", 30 * M, "2026-03-10 09:00"),  # starts before work
        ("2026-03-10 12:30", 30 * M, "2026-03-10 14:00"),  # starts in the lunch break
        ("2026-03-10 18:00", 1 * H, "2026-03-11 09:30"),  # starts after work
        ("2026-03-06 16:30", 2 * H, "2026-03-09 09:30"),  # Friday → across the weekend → Monday
        ("2026-03-07 10:00", 1 * H, "2026-03-09 09:30"),  # starts on a Saturday
        ("2026-03-10 08:30", 15 * H, "2026-03-11 17:30"),  # two full working days (7.5 h each)
        ("2026-09-30 17:00", 1 * H, "2026-10-08 09:00"),  # 国庆 1-7 Oct off
        ("2026-10-09 17:00", 1 * H, "2026-10-10 09:00"),  # Saturday 10 Oct is a 调休 working day
        ("2026-01-03 10:00", 1 * H, "2026-01-04 09:30"),  # 元旦 holiday → Sunday 4 Jan works
        ("2026-02-13 17:00", 1 * H, "2026-02-14 09:00"),  # Saturday 14 Feb works (春节 调休)
        ("2026-02-14 17:00", 1 * H, "2026-02-24 09:00"),  # then 15–23 Feb is 春节
        ("2026-04-03 17:00", 1 * H, "2026-04-07 09:00"),  # 清明 4–6 Apr
        ("2026-05-08 17:30", 1 * H, "2026-05-09 09:30"),  # Saturday 9 May works (劳动节 调休)
        ("2026-09-18 17:00", 1 * H, "2026-09-20 09:00"),  # Saturday off, Sunday 20 Sep works
    ],
)
def test_add_work_time(start: str, duration_ms: int, expected: str) -> None:
    """A work-time deadline skips nights, lunch, weekends and holidays and counts make-up working days."""
    assert local(CAL.add_work_time(at(start), duration_ms)) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected_ms"),
    [
        ("2026-03-06 17:00", "2026-03-09 09:00", 1 * H),  # weekend counts nothing
        ("2026-03-10 11:30", "2026-03-10 14:00", 1 * H),  # lunch counts nothing
        ("2026-09-30 08:00", "2026-10-08 08:00", int(7.5 * H)),  # one working day, then the holiday
        ("2026-03-10 20:00", "2026-03-10 22:00", 0),  # evening
        ("2026-03-10 14:00", "2026-03-10 10:00", 0),  # reversed
        # 2026: 261 weekdays − 19 holiday weekdays + 6 make-up days = 248 working days.
        ("2026-01-01 00:00", "2027-01-01 00:00", int(7.5 * H) * 248),
    ],
)
def test_work_time_between(a: str, b: str, expected_ms: int) -> None:
    """The work time between two instants counts only work windows of working days."""
    assert CAL.work_time_between(at(a), at(b)) == expected_ms


def test_natural_and_work_clocks_behind_one_function() -> None:
    """due() and elapsed() count every hour in natural mode and work hours in work mode."""
    start = at("2026-03-06 16:30")
    assert due(start, 2 * H, "natural") == start + 2 * H
    assert due(start, 2 * H, Clock.WORK) == at("2026-03-09 09:30")
    assert elapsed(start, at("2026-03-09 09:30"), "work") == 2 * H
    assert elapsed(start, at("2026-03-09 09:30"), "natural") == at("2026-03-09 09:30") - start
    assert elapsed(start, start - 1, "natural") == 0
    with pytest.raises(CalendarError, match="unknown clock mode 'lunar'"):
        due(start, H, "lunar")


START = st.integers(at("2025-12-20 00:00"), at("2026-12-20 00:00"))
DURATION = st.integers(0, 200 * H)


@settings(max_examples=300, deadline=None)
@given(start=START, duration=DURATION)
def test_between_inverts_add(start: int, duration: int) -> None:
    """work_time_between(start, add_work_time(start, d)) == d for any start and duration."""
    assert CAL.work_time_between(start, CAL.add_work_time(start, duration)) == duration


@settings(max_examples=300, deadline=None)
@given(start=START, d1=DURATION, d2=DURATION)
def test_add_is_monotonic_and_never_early(start: int, d1: int, d2: int) -> None:
    """A longer duration never gives an earlier deadline, and no deadline comes before natural time would."""
    low, high = sorted((d1, d2))
    assert CAL.add_work_time(start, low) <= CAL.add_work_time(start, high)
    assert CAL.add_work_time(start, high) >= start + high


def test_sample_calendar_matches_the_2026_notice() -> None:
    """The bundled table has the seven 2026 holidays, and every 调休 working day falls on a weekend."""
    assert len(CAL.holidays) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert date(2026, 2, 17) in CAL.holidays  # 春节 正月初一
    assert all(d.weekday() >= 5 for d in CAL.adjusted_workdays)
    assert all(CAL.is_workday(d) for d in CAL.adjusted_workdays)
    assert not CAL.is_workday(date(2026, 10, 5))
    assert CAL.is_workday(date(2027, 3, 1))  # beyond the table: weekdays work


def test_custom_calendar_in_another_zone() -> None:
    """A calendar with one window, a Friday-Saturday weekend and a holiday computes in its own zone."""
    cal = WorkCalendar(
        timezone="Asia/Dubai",
        work_hours=[("09:00", "13:00")],  # type: ignore[arg-type]
        weekend={4, 5},  # type: ignore[arg-type]
        holidays={date(2026, 3, 9)},  # type: ignore[arg-type]
    )
    dubai = ZoneInfo("Asia/Dubai")
    start = int(datetime(2026, 3, 5, 12, 0, tzinfo=dubai).timestamp() * 1000)  # Thursday noon
    end = datetime.fromtimestamp(cal.add_work_time(start, 2 * H) / 1000, tz=dubai)
    assert end == datetime(2026, 3, 8, 10, 0, tzinfo=dubai)  # Sunday (Fri/Sat off)
    end = datetime.fromtimestamp(cal.add_work_time(start, 6 * H) / 1000, tz=dubai)
    assert end == datetime(2026, 3, 10, 10, 0, tzinfo=dubai)  # Monday 9 Mar is a holiday


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"work_hours": (("08:30", "12:00"), ("11:00", "17:00"))}, "overlap"),
        ({"work_hours": (("12:00", "08:30"),)}, "ends before it starts"),
        ({"work_hours": (("8h30", "12:00"),)}, "bad time of day"),
        ({"work_hours": ()}, "may not be empty"),
        ({"weekend": frozenset(range(7))}, "some \\(not all\\)"),
        ({"holidays": frozenset({date(2026, 1, 4)}), "adjusted_workdays": frozenset({date(2026, 1, 4)})}, "both"),
    ],
)
def test_bad_calendars_are_refused(kwargs: dict[str, object], message: str) -> None:
    """A calendar that cannot hold together raises CalendarError at construction."""
    with pytest.raises(CalendarError, match=message):
        WorkCalendar(**kwargs)  # type: ignore[arg-type]


def test_negative_duration_is_refused() -> None:
    """A negative duration is a caller error."""
    with pytest.raises(CalendarError, match="≥ 0"):
        CAL.add_work_time(at("2026-03-10 09:00"), -1)


def test_long_spans_stay_fast() -> None:
    """A deadline a year of work time away still computes (and round-trips) in one call."""
    start = at("2026-01-01 00:00")
    end = CAL.add_work_time(start, int(7.5 * H) * 248)
    assert local(end) == "2026-12-31 17:30"
    evening = end + int(timedelta(hours=6).total_seconds() * 1000)  # after work: adds nothing
    assert CAL.work_time_between(start, evening) == int(7.5 * H) * 248


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("work_hours: [['08:30','12:00']]\nweekend: [saturday]\ncolour: red\n", r"colour: Extra inputs"),
        ("work_hours: [['08:30','12:00']]\nweekend: [caturday]\n", r"weekend\.0: Input should be"),
        (
            "work_hours: [['08:30','12:00']]\nweekend: []\nholidays: [{name: x, from: 2026-01-03, to: 2026-01-01}]\n",
            r"holidays\.0: Value error, 'to'",
        ),
        ("work_hours: [['08:30','07:00']]\nweekend: []\n", r"ends before it starts"),
    ],
)
def test_calendar_yaml_is_validated(tmp_path: Path, text: str, message: str) -> None:
    """A malformed calendar file is refused with the file and key path in the message."""
    path = tmp_path / "cal.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError, match=message):
        load_calendar(path)
