"""Deadline arithmetic in work time or natural time: instants (UTC ms), durations and a calendar in, instants out.

Sans-I/O: time is always an argument. A WorkCalendar knows the daily work windows, the weekend, the public
holidays and the make-up working days (调休); the bundled sample is China's 2026 schedule, kept as data in
cloud/grid/workcalendar-2026.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.grid.yamlconf import load_model

DEFAULT_PATH: Final = Path(__file__).with_name("grid") / "workcalendar-2026.yaml"
MAX_DAYS: Final = 3660  # a deadline that needs more than ten years of calendar is a configuration error
DAY_NAMES: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class CalendarError(ValueError):
    """A work calendar that does not hold together, or a question it cannot answer."""


class Clock(StrEnum):
    """How a deadline counts: every hour (safety categories) or work hours only."""

    NATURAL = "natural"
    WORK = "work"


def parse_hhmm(text: str) -> time:
    """Return the time of day of an 'HH:MM' string."""
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise CalendarError(f"bad time of day {text!r}; expected HH:MM") from exc


@dataclass(frozen=True)
class WorkCalendar:
    """Work windows per working day, a weekend, holidays and make-up working days, in one time zone."""

    timezone: str = "Asia/Shanghai"
    work_hours: tuple[tuple[str, str], ...] = (("08:30", "12:00"), ("13:30", "17:30"))
    weekend: frozenset[int] = frozenset({5, 6})  # date.weekday(): Monday is 0
    holidays: frozenset[date] = frozenset()
    adjusted_workdays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _times: tuple[tuple[time, time], ...] = field(init=False, repr=False, compare=False)
    _windows: dict[date, tuple[tuple[int, int], ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("weekend", "holidays", "adjusted_workdays"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        object.__setattr__(self, "work_hours", tuple((str(a), str(b)) for a, b in self.work_hours))
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarError(f"unknown time zone {self.timezone!r}") from exc
        times = tuple((parse_hhmm(a), parse_hhmm(b)) for a, b in self.work_hours)
        if not times:
            raise CalendarError("work_hours may not be empty")
        for (s1, e1), nxt in zip(times, (*times[1:], None), strict=True):
            if not s1 < e1:
                raise CalendarError(f"work window {s1:%H:%M}-{e1:%H:%M} ends before it starts")
            if nxt is not None and not e1 <= nxt[0]:
                raise CalendarError(f"work windows overlap or are out of order at {nxt[0]:%H:%M}")
        if not set(self.weekend) <= set(range(7)) or len(self.weekend) == 7:
            raise CalendarError(f"weekend must be some (not all) of the weekdays 0-6, got {sorted(self.weekend)}")
        both = self.holidays & self.adjusted_workdays
        if both:
            raise CalendarError(f"dates both holiday and make-up workday: {sorted(both)}")
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_times", times)
        object.__setattr__(self, "_windows", {})

    def is_workday(self, day: date) -> bool:
        """Whether `day` is a working day: a make-up day is, a holiday or weekend day is not."""
        if day in self.adjusted_workdays:
            return True
        return day not in self.holidays and day.weekday() not in self.weekend

    def windows(self, day: date) -> tuple[tuple[int, int], ...]:
        """Return the work windows of a local date as (start_ms, end_ms) pairs, none on a day off."""
        found = self._windows.get(day)
        if found is None:
            found = ()
            if self.is_workday(day):
                found = tuple((self._ms(day, a), self._ms(day, b)) for a, b in self._times)
            self._windows[day] = found
        return found

    def _ms(self, day: date, at: time) -> int:
        return int(datetime.combine(day, at, tzinfo=self._zone).timestamp() * 1000)

    def local_date(self, ms: int) -> date:
        """Return the local calendar date of an instant."""
        return datetime.fromtimestamp(ms / 1000, tz=self._zone).date()

    def add_work_time(self, start_ms: int, duration_ms: int) -> int:
        """Return the instant at which `duration_ms` of work time has passed since `start_ms`."""
        if duration_ms < 0:
            raise CalendarError(f"duration must be ≥ 0, got {duration_ms}")
        if duration_ms == 0:
            return start_ms
        remaining = duration_ms
        day = self.local_date(start_ms)
        for _ in range(MAX_DAYS):
            for begin, end in self.windows(day):
                if end <= start_ms:
                    continue
                begin = max(begin, start_ms)
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin
            day += timedelta(days=1)
        raise CalendarError(f"no {duration_ms} ms of work time within {MAX_DAYS} days of {start_ms}")

    def work_time_between(self, a_ms: int, b_ms: int) -> int:
        """Return the work time between two instants (0 when b ≤ a)."""
        total = 0
        if b_ms <= a_ms:
            return total
        day, last = self.local_date(a_ms), self.local_date(b_ms)
        while day <= last:
            for begin, end in self.windows(day):
                total += max(0, min(end, b_ms) - max(begin, a_ms))
            day += timedelta(days=1)
        return total

    def due(self, start_ms: int, duration_ms: int, mode: str) -> int:
        """Return the instant `duration_ms` of `mode` time (natural or work) after `start_ms`."""
        if clock(mode) is Clock.NATURAL:
            return start_ms + duration_ms
        return self.add_work_time(start_ms, duration_ms)

    def elapsed(self, start_ms: int, end_ms: int, mode: str) -> int:
        """Return the `mode` time between two instants (0 when end ≤ start)."""
        if clock(mode) is Clock.NATURAL:
            return max(0, end_ms - start_ms)
        return self.work_time_between(start_ms, end_ms)


def clock(mode: str) -> Clock:
    """Return the Clock named by `mode`; raise CalendarError for anything else."""
    try:
        return Clock(mode)
    except ValueError:
        raise CalendarError(f"unknown clock mode {mode!r}; expected 'natural' or 'work'") from None


def due(start_ms: int, duration_ms: int, mode: str, calendar: WorkCalendar | None = None) -> int:
    """Return the deadline `duration_ms` of `mode` time after `start_ms` (bundled calendar by default)."""
    return (calendar or default_calendar()).due(start_ms, duration_ms, mode)


def elapsed(start_ms: int, end_ms: int, mode: str, calendar: WorkCalendar | None = None) -> int:
    """Return the `mode` time between two instants (bundled calendar by default)."""
    return (calendar or default_calendar()).elapsed(start_ms, end_ms, mode)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Holiday(_Strict):
    name: str
    name_en: str = ""
    first: date = Field(alias="from")
    last: date = Field(alias="to")
    make_up: list[date] = Field(default_factory=list)  # 调休上班

    @model_validator(mode="after")
    def _ordered(self) -> _Holiday:
        if self.last < self.first:
            raise ValueError(f"'to' ({self.last}) is before 'from' ({self.first})")
        return self


class _CalendarDoc(_Strict):
    timezone: str = "Asia/Shanghai"
    work_hours: list[tuple[str, str]] = Field(min_length=1)
    weekend: list[Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]]
    holidays: list[_Holiday] = Field(default_factory=list)


def calendar_from_doc(doc: _CalendarDoc) -> WorkCalendar:
    """Expand holiday ranges into dates and build the calendar."""
    off: set[date] = set()
    make_up: set[date] = set()
    for h in doc.holidays:
        off.update(h.first + timedelta(days=i) for i in range((h.last - h.first).days + 1))
        make_up.update(h.make_up)
    return WorkCalendar(
        timezone=doc.timezone,
        work_hours=tuple(doc.work_hours),
        weekend=frozenset(DAY_NAMES.index(d) for d in doc.weekend),
        holidays=frozenset(off),
        adjusted_workdays=frozenset(make_up),
    )


def load_calendar(path: str | Path | None = None) -> WorkCalendar:
    """Load and validate a work calendar YAML (the bundled 2026 sample by default)."""
    where = Path(path) if path is not None else DEFAULT_PATH
    doc = load_model(where, _CalendarDoc, CalendarError)
    try:
        return calendar_from_doc(doc)
    except CalendarError as exc:
        raise CalendarError(f"{where}: {exc}") from exc


@cache
def default_calendar() -> WorkCalendar:
    """Return the bundled calendar (China 2026, Asia/Shanghai), loaded once."""
    return load_calendar()
