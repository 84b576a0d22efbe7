"""Silences and emergencies: matchers in; whether an alert's facts match, and their storage, out.

A silence is a maintenance window with an owner, a reason, matchers on device, gateway, category,
territory (`grid`: any territory code, matched through the tree) and rule, and an end at most 7 days
out. Silenced alerts are kept and shown; they open no case. A declared emergency has the same matchers
and absorbs matching alerts into its own case.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any, Final

from cloud.db import Database
from cloud.incidents.ports import District

MAX_SILENCE_MS: Final = 7 * 86_400_000


class SilenceError(ValueError):
    """A silence or emergency is malformed (no matcher, no owner or reason, bad window)."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What matchers look at: an alert's or liveness event's identity and place."""

    gateway: str
    device: str
    rule: str
    category: str | None = None
    grid: str | None = None


@dataclass(frozen=True, slots=True)
class Matchers:
    """Equality (or shell-glob) matchers; unset ones match anything; at least one must be set."""

    device: str | None = None
    gateway: str | None = None
    category: str | None = None
    grid: str | None = None  # any territory code: the grid, its 片区, 办事处 or the district
    rule: str | None = None

    def empty(self) -> bool:
        """Whether no matcher is set (which would silence everything)."""
        return all(v is None for v in (self.device, self.gateway, self.category, self.grid, self.rule))

    def match(self, facts: Facts, district: District) -> bool:
        """Whether every set matcher matches the facts."""
        for pattern, value in (
            (self.device, facts.device),
            (self.gateway, facts.gateway),
            (self.category, facts.category),
            (self.rule, facts.rule),
        ):
            if pattern is not None and (value is None or not fnmatchcase(value, pattern)):
                return False
        if self.grid is not None:
            if facts.grid is None:
                return False
            return facts.grid == self.grid or district.contains(self.grid, facts.grid)
        return True

    def to_json(self) -> str:
        """Return the matchers as JSON (unset ones left out)."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Matchers:
        """Read matchers written by `to_json`."""
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Silence:
    """A maintenance window."""

    id: int
    owner: str
    reason: str
    matchers: Matchers
    starts_ms: int
    ends_ms: int
    created_ms: int
    expired_ms: int | None = None

    def active(self, at_ms: int) -> bool:
        """Whether the silence mutes alerts at `at_ms`."""
        end = self.ends_ms if self.expired_ms is None else min(self.ends_ms, self.expired_ms)
        return self.starts_ms <= at_ms < end


@dataclass(frozen=True, slots=True)
class Emergency:
    """A declared emergency absorbing matching alerts into its case."""

    id: int
    name: str
    matchers: Matchers
    case_id: int
    starts_ms: int
    ends_ms: int

    def active(self, at_ms: int) -> bool:
        """Whether the emergency absorbs alerts at `at_ms`."""
        return self.starts_ms <= at_ms < self.ends_ms


def check_window(matchers: Matchers, starts_ms: int, ends_ms: int, now: int) -> None:
    """Raise SilenceError unless the matchers are set and the window ends after now, at most 7 days out."""
    if matchers.empty():
        raise SilenceError("a silence needs at least one matcher")
    if ends_ms <= max(starts_ms, now):
        raise SilenceError("a silence must end after it starts and after now")
    if ends_ms - now > MAX_SILENCE_MS:
        raise SilenceError("a silence may end at most 7 days from now")


class Silences:
    """Silences and emergencies in the incident tables (created by CaseStore's migration)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, silence: Silence) -> Silence:
        """Validate and store a silence (its id reserved by the caller)."""
        if not silence.owner.strip() or not silence.reason.strip():
            raise SilenceError("a silence needs an owner and a reason")
        check_window(silence.matchers, silence.starts_ms, silence.ends_ms, silence.created_ms)
        self.db.execute(
            "INSERT INTO incident_silences (id, owner, reason, matchers, starts_ms, ends_ms, created_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                silence.id,
                silence.owner,
                silence.reason,
                silence.matchers.to_json(),
                silence.starts_ms,
                silence.ends_ms,
                silence.created_ms,
            ),
        )
        return silence

    def expire(self, silence_id: int, now: int) -> bool:
        """End a silence now; return False if there is no such active silence."""
        return (
            self.db.execute(
                "UPDATE incident_silences SET expired_ms = ? WHERE id = ? AND expired_ms IS NULL AND ends_ms > ?",
                (now, silence_id, now),
            )
            == 1
        )

    def get(self, silence_id: int) -> Silence | None:
        """Return one silence."""
        row = self.db.fetchone(
            "SELECT id, owner, reason, matchers, starts_ms, ends_ms, created_ms, expired_ms "
            "FROM incident_silences WHERE id = ?",
            (silence_id,),
        )
        return None if row is None else _silence(row)

    def listing(self, now: int, *, include_ended: bool = False) -> list[Silence]:
        """Return silences not ended at `now` (or all), newest first."""
        sql = "SELECT id, owner, reason, matchers, starts_ms, ends_ms, created_ms, expired_ms FROM incident_silences"
        if include_ended:
            rows = self.db.fetchall(sql + " ORDER BY id DESC")
        else:
            rows = self.db.fetchall(
                sql + " WHERE ends_ms > ? AND (expired_ms IS NULL OR expired_ms > ?) ORDER BY id DESC", (now, now)
            )
        return [_silence(r) for r in rows]

    def active_window(self, start_ms: int, end_ms: int) -> list[Silence]:
        """Return silences that overlap [start, end] (one query per alert batch)."""
        rows = self.db.fetchall(
            "SELECT id, owner, reason, matchers, starts_ms, ends_ms, created_ms, expired_ms FROM incident_silences "
            "WHERE starts_ms <= ? AND ends_ms > ? AND (expired_ms IS NULL OR expired_ms > ?)",
            (end_ms, start_ms, start_ms),
        )
        return [_silence(r) for r in rows]

    def add_emergency(self, emergency: Emergency) -> Emergency:
        """Store a declared emergency (its case opened by the caller)."""
        if emergency.matchers.empty():
            raise SilenceError("an emergency needs at least one matcher")
        if emergency.ends_ms <= emergency.starts_ms:
            raise SilenceError("an emergency must end after it starts")
        self.db.execute(
            "INSERT INTO incident_emergencies (id, name, matchers, case_id, starts_ms, ends_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                emergency.id,
                emergency.name,
                emergency.matchers.to_json(),
                emergency.case_id,
                emergency.starts_ms,
                emergency.ends_ms,
            ),
        )
        return emergency

    def emergencies(self, start_ms: int, end_ms: int) -> list[Emergency]:
        """Return emergencies that overlap [start, end]."""
        rows = self.db.fetchall(
            "SELECT id, name, matchers, case_id, starts_ms, ends_ms FROM incident_emergencies "
            "WHERE starts_ms <= ? AND ends_ms > ?",
            (end_ms, start_ms),
        )
        return [Emergency(r[0], r[1], Matchers.from_json(r[2]), r[3], r[4], r[5]) for r in rows]


def _silence(row: tuple[Any, ...]) -> Silence:
    return Silence(row[0], row[1], row[2], Matchers.from_json(row[3]), row[4], row[5], row[6], row[7])
