"""The 立案结案标准 table: standards.yaml in, per category × urgency deadlines, lights, escalation and policies out.

Durations are written like `15m`, `2h`, `1h30m`, `7.5h` or `3d` (d = 24 h). In a `work` clock category a
duration counts work time on the calendar (7.5 h is one working day of the sample calendar); in a `natural`
one it counts every hour. Each step's limit runs from the end of the step before it; `overall` runs from
立案 (registration) to 结案 (closure). Limits are configuration: nothing here is a default deadline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from cloud.grid.yamlconf import load_model
from cloud.incidents.model import Recovery, Urgency
from cloud.worktime import Clock

DEFAULT_PATH: Final = Path(__file__).with_name("standards.yaml")
STEPS: Final = ("accept", "verify", "register", "dispatch", "sign", "handle", "check", "close")
REQUIRED_STEPS: Final = ("accept", "register", "dispatch", "sign", "handle", "check")
URGENCY_ALIASES: Final[Mapping[str, Urgency]] = {
    "一般": Urgency.NORMAL,
    "紧急": Urgency.URGENT,
    "非常紧急": Urgency.CRITICAL,
}
Light = Literal["green", "yellow", "red"]
Role = Literal["grid_worker", "area_lead", "office_lead", "shift_lead", "dispatcher", "dept_lead", "leader"]
_UNIT_MS: Final = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class StandardsError(Exception):
    """The standards table does not validate (the message names the key path), or has no such rule."""


def parse_duration_ms(value: object) -> int:
    """Return milliseconds of '90s', '15m', '1h30m', '7.5h', '3d' (or a number of seconds)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        ms = round(float(value) * 1000)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if "".join(n + u for n, u in parts) != text:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 1h30m, 7.5h, 3d)")
        ms = round(sum(float(n) * _UNIT_MS[u] for n, u in parts))
    else:
        raise ValueError(f"not a duration: {value!r}")
    if ms <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return ms


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EscalationDoc(_Strict):
    """One escalation rule as written in the table."""

    trigger: Literal["sign_overdue", "step_overdue", "yellow", "red"]
    action: Literal["escalate", "notify", "supervise"]  # 升级 / 提醒 / 督办
    notify: list[Role] = Field(min_length=1)
    step: Literal["accept", "verify", "register", "dispatch", "sign", "handle", "check", "close"] | None = None
    after: DurationMs | None = None  # a grace after the trigger before acting


class LimitsDoc(_Strict):
    """Step limits and the overall limit of one urgency."""

    accept: DurationMs
    verify: DurationMs | None = None
    # `register` would shadow BaseModel.register (ABCMeta): keep the YAML key through an alias.
    register_: DurationMs = Field(alias="register")
    dispatch: DurationMs
    sign: DurationMs
    handle: DurationMs
    check: DurationMs
    close: DurationMs | None = None
    overall: DurationMs

    @model_validator(mode="after")
    def _steps_fit(self) -> Self:
        for step, value in self.steps().items():
            if value > self.overall:
                raise ValueError(f"step {step!r} is longer than 'overall'")
        return self

    def steps(self) -> dict[str, int]:
        """Return the given step limits by step name, in loop order."""
        values = {s: getattr(self, "register_" if s == "register" else s) for s in STEPS}
        return {s: v for s, v in values.items() if v is not None}


class RecoveryDoc(_Strict):
    """How a case of this category may close after the sensor recovers."""

    policy: Recovery = Recovery.HUMAN_CHECK_REQUIRED
    stable_for: DurationMs | None = None  # sensor_sufficient: recovered and online this long
    veto_window: DurationMs | None = None  # sensor_sufficient: a person may veto the automatic 核查

    @model_validator(mode="after")
    def _sensor_fields(self) -> Self:
        sensor = self.policy is Recovery.SENSOR_SUFFICIENT
        given = self.stable_for is not None and self.veto_window is not None
        if sensor and not given:
            raise ValueError("sensor_sufficient needs 'stable_for' and 'veto_window'")
        if not sensor and (self.stable_for is not None or self.veto_window is not None):
            raise ValueError(f"'stable_for'/'veto_window' apply only to sensor_sufficient, not {self.policy.value}")
        return self


class Open311Doc(_Strict):
    """How the category shows on Open311."""

    service: bool = True  # listed in services.json (the public may report it)
    hide_sensor_cases: bool = False  # sensor-sourced cases left out of requests.json


class ThresholdsDoc(_Strict):
    """The traffic-light thresholds, as fractions of the allowed time."""

    yellow_at: float = Field(gt=0)
    red_at: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.yellow_at < self.red_at:
            raise ValueError("yellow_at must be below red_at")
        return self


class CategoryDoc(_Strict):
    """One category of the table."""

    name: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    clock: Clock
    recovery: RecoveryDoc = RecoveryDoc()
    self_handling: bool = False  # 自行处置 by the grid worker
    open311: Open311Doc = Open311Doc()
    thresholds: ThresholdsDoc | None = None
    escalation: list[EscalationDoc] | None = None
    limits: dict[Urgency, LimitsDoc]

    @field_validator("limits")
    @classmethod
    def _complete(cls, limits: dict[Urgency, LimitsDoc]) -> dict[Urgency, LimitsDoc]:
        missing = [u.value for u in Urgency if u not in limits]
        if missing:
            raise ValueError(f"limits missing for urgency {', '.join(missing)}")
        return limits


class DefaultsDoc(_Strict):
    """What a category inherits unless it says otherwise."""

    thresholds: ThresholdsDoc
    escalation: list[EscalationDoc] = Field(default_factory=list)


class StandardsDoc(_Strict):
    """The whole table."""

    version: Literal[1]
    defaults: DefaultsDoc
    templates: dict[str, LimitsDoc] = Field(default_factory=dict)  # YAML anchors to reuse; checked too
    categories: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], CategoryDoc] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """When `trigger` happens (and `after_ms` more has passed), do `action` and tell the `notify` roles."""

    trigger: str  # "sign_overdue" | "step_overdue" | "yellow" | "red"
    action: str  # "escalate" | "notify" | "supervise"
    notify: tuple[str, ...]
    step: str | None = None  # step_overdue: which step (None: any)
    after_ms: int = 0


@dataclass(frozen=True, slots=True)
class CategoryStandard:
    """The standard for one category × urgency, in milliseconds of its clock."""

    category: str
    urgency: Urgency
    name: str
    name_en: str
    clock_mode: Clock
    steps: Mapping[str, int]
    overall_ms: int
    yellow_at: float
    red_at: float
    escalation: tuple[EscalationStep, ...]
    recovery: Recovery
    stable_for_ms: int
    veto_ms: int
    self_handling: bool
    open311_service: bool
    open311_hidden: bool

    @property
    def is_governance(self) -> bool:
        """Whether cases of this category are governance cases (not the maintenance queue)."""
        return self.recovery is not Recovery.DEVICE_HEALTH

    def light(self, elapsed_ms: int, allowed_ms: int | None = None) -> Light:
        """Return the traffic light for `elapsed_ms` of `allowed_ms` (the overall limit by default)."""
        allowed = self.overall_ms if allowed_ms is None else allowed_ms
        if elapsed_ms >= self.red_at * allowed:
            return "red"
        return "yellow" if elapsed_ms >= self.yellow_at * allowed else "green"


def parse_urgency(value: str) -> Urgency:
    """Return the Urgency of 'normal'/'urgent'/'critical' or 一般/紧急/非常紧急."""
    if value in URGENCY_ALIASES:
        return URGENCY_ALIASES[value]
    try:
        return Urgency(value)
    except ValueError:
        raise StandardsError(
            f"unknown urgency {value!r}; expected normal, urgent, critical (一般, 紧急, 非常紧急)"
        ) from None


def _escalation(docs: list[EscalationDoc]) -> tuple[EscalationStep, ...]:
    return tuple(EscalationStep(d.trigger, d.action, tuple(d.notify), d.step, d.after or 0) for d in docs)


class Standards:
    """The loaded table: `rule(category, urgency)` answers every question the case engine asks of it."""

    def __init__(self, doc: StandardsDoc) -> None:
        self.doc = doc
        self._rules: dict[tuple[str, Urgency], CategoryStandard] = {}
        for code, cat in doc.categories.items():
            thresholds = cat.thresholds or doc.defaults.thresholds
            escalation = _escalation(doc.defaults.escalation if cat.escalation is None else cat.escalation)
            for level, limits in cat.limits.items():
                steps = limits.steps()
                self._rules[(code, level)] = CategoryStandard(
                    category=code,
                    urgency=level,
                    name=cat.name,
                    name_en=cat.name_en,
                    clock_mode=cat.clock,
                    steps=steps,
                    overall_ms=limits.overall,
                    yellow_at=thresholds.yellow_at,
                    red_at=thresholds.red_at,
                    escalation=escalation,
                    recovery=cat.recovery.policy,
                    stable_for_ms=cat.recovery.stable_for or 0,
                    veto_ms=cat.recovery.veto_window or 0,
                    self_handling=cat.self_handling,
                    open311_service=cat.open311.service,
                    open311_hidden=cat.open311.hide_sensor_cases,
                )

    @classmethod
    def load(cls, path: str | Path | None = None) -> Standards:
        """Load and validate a standards YAML (the bundled sample by default)."""
        return cls(load_model(Path(path) if path is not None else DEFAULT_PATH, StandardsDoc, StandardsError))

    def rule(self, category: str, urgency: str) -> CategoryStandard:
        """Return the standard of a category at an urgency; raise StandardsError if the table has none."""
        found = self._rules.get((category, parse_urgency(urgency)))
        if found is None:
            raise StandardsError(f"no standard for category {category!r}; known: {', '.join(self.categories())}")
        return found

    def categories(self) -> list[str]:
        """Return the category codes of the table, in table order."""
        return list(self.doc.categories)

    def describe(self, category: str) -> CategoryDoc:
        """Return a category's entry as written (names, clock, recovery, Open311 flags)."""
        try:
            return self.doc.categories[category]
        except KeyError:
            raise StandardsError(f"no standard for category {category!r}") from None
