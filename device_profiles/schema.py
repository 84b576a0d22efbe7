"""Device profile schema: how to read a sensor model, kept apart from what it measures."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from device_profiles.vocabulary import UNIT_CONVERSIONS, quantity_spec

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Turn `3s`, `10m`, `1.5h`, `250ms` or a number of seconds into seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '3s', '10m', '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("a duration is a number of seconds or a string like '3s', '10m', '1h'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    """Base of every profile model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialSettings(Strict):
    """Line settings of a serial port (RS-232/RS-485)."""

    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class NmeaRead(Strict):
    """NMEA 0183 framing options."""

    # Sentence types (e.g. `GPTXT` or `TXT`) accepted without a checksum, for receivers that omit it.
    checksumless: tuple[str, ...] = ()
    max_sentence_bytes: int = Field(512, ge=82, le=4096)


class Hj212Read(Strict):
    """HJ 212 framing options."""

    crc: Literal["hj212", "modbus_be", "modbus_le", "none"] = "hj212"
    timezone: str = "Asia/Shanghai"
    max_frame_bytes: int = Field(10240, ge=64)

    @model_validator(mode="after")
    def _known_timezone(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        return self


WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32"]


class Register(Strict):
    """One value in a Modbus register map."""

    name: str
    function: Literal[3, 4] = 3
    address: int = Field(ge=0, le=65535)
    type: RegisterType = "uint16"
    # Byte order of the value as ABCD letters (A = most significant byte); 16-bit values use AB or BA.
    order: WordOrder = "ABCD"
    scale: float = 1.0
    # Name of a register whose value is the number of decimal places of this one.
    decimals_register: str | None = None

    @property
    def words(self) -> int:
        """Number of 16-bit registers the value spans."""
        return 1 if self.type in ("int16", "uint16") else 2


class ModbusRead(Strict):
    """A Modbus RTU register map and its polling cadence."""

    registers: tuple[Register, ...] = Field(min_length=1)
    interval: Duration = 5.0
    timeout: Duration = 1.0

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        names = [r.name for r in self.registers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"register names must be unique: {', '.join(duplicates)}")
        for reg in self.registers:
            if reg.decimals_register is not None and reg.decimals_register not in names:
                raise ValueError(
                    f"register {reg.name!r}: decimals_register {reg.decimals_register!r} is not a register of this map"
                )
        return self


class JsonRead(Strict):
    """JSON messages: which field path holds which source value."""

    # source key -> dotted path in the message (`data.tilt`, `values.0`).
    fields: dict[str, str] = Field(min_length=1)
    time_field: str | None = None
    time_format: Literal["epoch_ms", "epoch_s", "rfc3339"] = "epoch_ms"


class ReadSpec(Strict):
    """How to read the device: transport, framing and decoder."""

    transport: Literal["serial", "modbus", "mqtt", "tcp"]
    decoder: Literal["nmea", "hj212", "modbus", "json"]
    serial: SerialSettings | None = None
    nmea: NmeaRead | None = None
    hj212: Hj212Read | None = None
    modbus: ModbusRead | None = None
    json_: JsonRead | None = Field(None, alias="json")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _decoder_section(self) -> Self:
        if self.decoder == "nmea" and self.nmea is None:
            object.__setattr__(self, "nmea", NmeaRead())
        if self.decoder == "hj212" and self.hj212 is None:
            object.__setattr__(self, "hj212", Hj212Read())
        if self.decoder == "modbus" and self.modbus is None:
            raise ValueError("decoder 'modbus' needs a 'modbus' section with its registers")
        if self.decoder == "json" and self.json_ is None:
            raise ValueError("decoder 'json' needs a 'json' section with its fields")
        allowed = {
            "nmea": {"serial", "tcp"},
            "hj212": {"serial", "tcp"},
            "modbus": {"modbus"},
            "json": {"mqtt", "tcp"},
        }[self.decoder]
        if self.transport not in allowed:
            raise ValueError(f"decoder {self.decoder!r} cannot be read over {self.transport!r}")
        return self

    def source_keys(self) -> set[str] | None:
        """Return the source keys this decoder can produce, or None where it is open-ended."""
        if self.modbus is not None and self.decoder == "modbus":
            return {r.name for r in self.modbus.registers}
        if self.json_ is not None and self.decoder == "json":
            return set(self.json_.fields)
        return None


class Measure(Strict):
    """What one source value measures: canonical quantity and unit, scaling and valid range."""

    source: str
    quantity: str
    unit: str
    # The unit the device reports in, when it differs from the canonical one (converted on read).
    device_unit: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    valid_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _canonical(self) -> Self:
        spec = quantity_spec(self.quantity)
        if spec is None:
            raise ValueError(f"unknown quantity {self.quantity!r} (not in the canonical vocabulary)")
        if self.unit != spec.unit:
            raise ValueError(f"quantity {self.quantity!r} is in {spec.unit!r}, not {self.unit!r}")
        if (
            self.device_unit is not None
            and self.device_unit != self.unit
            and (self.device_unit, self.unit) not in UNIT_CONVERSIONS
        ):
            raise ValueError(f"no conversion from {self.device_unit!r} to {self.unit!r}")
        if self.valid_range is not None and self.valid_range[0] > self.valid_range[1]:
            raise ValueError("valid_range must be [low, high] with low <= high")
        return self

    @property
    def factor(self) -> float:
        """Multiplier from device value to canonical value, unit conversion included."""
        convert = 1.0
        if self.device_unit is not None and self.device_unit != self.unit:
            convert = UNIT_CONVERSIONS[(self.device_unit, self.unit)]
        return self.scale * convert


class Level(Strict):
    """One severity level of a threshold rule: fires above or below its limit."""

    severity: int = Field(ge=1, le=4)
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("a level needs exactly one of 'above' or 'below'")
        return self


class RuleBase(Strict):
    """Common fields of every rule."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    # How a case opened by this rule may close (see the incidents layer).
    recovery: Literal["human_check_required", "sensor_sufficient", "device_health"] = "human_check_required"
    category: str | None = None


class ThresholdRule(RuleBase):
    """Fire when a quantity crosses a level for `for`; resolve after `clear_for` back inside."""

    kind: Literal["threshold"]
    quantity: str
    levels: tuple[Level, ...] = Field(min_length=1)
    for_: Duration = Field(0.0, alias="for")
    clear_for: Duration = 0.0

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RateRule(RuleBase):
    """Fire when a quantity changes faster than `max_change` over `window`."""

    kind: Literal["rate"]
    quantity: str
    max_change: float = Field(gt=0)
    window: Duration = Field(gt=0)
    direction: Literal["rise", "fall", "any"] = "any"
    severity: int = Field(1, ge=1, le=4)


class NoDataRule(RuleBase):
    """Fire when a device sends nothing (or nothing of `quantity`) for `after`."""

    kind: Literal["no_data"]
    after: Duration = Field(gt=0)
    quantity: str | None = None
    severity: int = Field(1, ge=1, le=4)
    recovery: Literal["human_check_required", "sensor_sufficient", "device_health"] = "device_health"


class GeofenceRule(RuleBase):
    """Fire when a GNSS position stays outside (or inside) a polygon for `dwell`."""

    kind: Literal["geofence"]
    # Polygon vertices as [longitude, latitude] pairs.
    polygon: tuple[tuple[float, float], ...] = Field(min_length=3)
    fire_when: Literal["outside", "inside"] = "outside"
    dwell: Duration = 0.0
    severity: int = Field(1, ge=1, le=4)


Rule = Annotated[ThresholdRule | RateRule | NoDataRule | GeofenceRule, Field(discriminator="kind")]


class Profile(Strict):
    """A sensor model: how to read it (`read`) and what it measures (`measures`, `rules`)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    manufacturer: str = ""
    read: ReadSpec
    measures: tuple[Measure, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        sources = self.read.source_keys()
        quantities = {m.quantity for m in self.measures}
        for m in self.measures:
            if sources is not None and m.source not in sources:
                raise ValueError(f"measure {m.quantity!r}: source {m.source!r} is not read")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique within a profile")
        for rule in self.rules:
            needed: set[str] = set()
            if isinstance(rule, ThresholdRule | RateRule):
                needed = {rule.quantity}
            elif isinstance(rule, NoDataRule) and rule.quantity is not None:
                needed = {rule.quantity}
            elif isinstance(rule, GeofenceRule):
                needed = {"latitude", "longitude"}
            missing = needed - quantities
            if missing:
                raise ValueError(
                    f"rule {rule.name!r} needs {', '.join(sorted(missing))}, which this profile does not measure"
                )
        return self

    def measure_for(self, quantity: str) -> Measure | None:
        """Return the measure that yields `quantity`, if any."""
        return next((m for m in self.measures if m.quantity == quantity), None)
