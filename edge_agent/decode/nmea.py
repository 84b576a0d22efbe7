"""NMEA 0183 GNSS stream decoder: receiver bytes and arrival time in, one Sample per quantity per epoch out.

An epoch is one navigation cycle, identified by the UTC time of day of its GGA/GNS/RMC/GLL/ZDA
sentences; GSA, GSV and VTG (no time of their own) belong to the epoch they arrive in. An epoch is
emitted when

* a timed sentence carries another time of day (the next cycle has begun), or
* a timed sentence (or VTG) repeats within the epoch (a receiver repeating GGA with a frozen time), or
* the receiver's cycle-ending sentence arrives: the sentence type that was last, and alone of its type,
  in the two previous cycles (learned like gpsd does; forgotten when a cycle ends without it).

Validity is ours, never pynmea2's: a GGA counts with quality 1-7 (0 is no fix, 8 is simulation), an RMC
with status A/D (its NMEA 4.1 navigation status is ignored: Quectel sends `V` with valid fixes), a GNS
with any system mode of A/D/P/R/F/E, a GLL with status A and a mode other than N. Coordinates of no-fix
sentences are ignored, and so is (0, 0). A GSA fix type of 1 vetoes an epoch whose only position source
is a GLL. The position comes from the first valid of GGA, GNS, RMC, GLL.

Time: a time-only epoch takes the date of the last valid RMC or any ZDA, one day later when the time of
day went back across midnight; with no date yet, the day of `now_ms` (or the day before or after) that
puts the epoch nearest to `now_ms`. A leap second (`235960`) is accepted and lands on the next day's
00:00:00 (as POSIX time does). Samples of an epoch more than a year away from `now_ms` carry
`clock_suspect` (GPS week rollover), those of a GGA repeating its predecessor's time carry `stale`.

Satellites are keyed by (constellation, number, signal): `sats_in_view_*` counts distinct satellites of
the latest complete GSV group of each talker and Signal ID; `sats_used_*` counts the GSA satellites of
the epoch; `sats_used` is the receiver's own GGA/GNS count, else the GSA total. SBAS is counted in none
of the six constellations (see nmea_constellations). Altitude, speed and course come only with a valid
position; DOPs of 99 or more mean "unknown" and are dropped.

The last epoch of a stream waits for the next cycle (or its learned ender): call `flush(now_ms)` at the end
of a stream or after a silence. Sentence records are immutable, so a line repeated verbatim (GSA, GSV,
VTG while the sky is unchanged) reuses its record from a small cache instead of being parsed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Final

from device_profiles.schema import NmeaRead
from edge_agent.decode.base import DecodeStats, Sample
from edge_agent.decode.nmea_constellations import CONSTELLATIONS, satellite
from edge_agent.decode.nmea_framing import NmeaFramer
from edge_agent.decode.nmea_sentences import (
    Gga,
    Gll,
    Gns,
    Gsa,
    Gsv,
    NmeaChecksumError,
    NmeaError,
    NmeaFramingError,
    NmeaSentence,
    Rmc,
    SatInView,
    UnknownSentence,
    Vtg,
    Zda,
    parse_body,
    parse_sentence,
    split_sentence,
)

__all__ = [
    "NmeaChecksumError",
    "NmeaDecoder",
    "NmeaError",
    "NmeaFramingError",
    "NmeaSentence",
    "SatInView",
    "UnknownSentence",
    "parse_sentence",
]

DAY_MS: Final = 86_400_000
# Farther than this from the arrival clock, a receiver's date is suspect (e.g. GPS week rollover).
CLOCK_WINDOW_MS: Final = 366 * DAY_MS
# A GSV group not refreshed for this long (arrival time) no longer counts as in view.
SKY_TTL_MS: Final = 60_000
# How many distinct recent lines keep their parsed record.
RECENT_LINES: Final = 64
# DOPs of 99 and more are the receivers' way of saying "unknown".
MAX_DOP: Final = 99.0
_EPOCH_DAY: Final = date(1970, 1, 1)
_USED_KEYS: Final = {name: f"sats_used_{name}" for name in CONSTELLATIONS}
_IN_VIEW_KEYS: Final = {name: f"sats_in_view_{name}" for name in CONSTELLATIONS}
# The mapping is pure and receivers use few distinct numbers: memoize it.
_satellite: Final = lru_cache(maxsize=4096)(satellite)
_GNS_FIX: Final = frozenset("ADPRFE")


@dataclass(slots=True)
class _Epoch:
    """What one navigation cycle said so far."""

    tod: int | None = None
    date: tuple[int, int, int] | None = None
    kinds: dict[str, int] = field(default_factory=dict)
    last_kind: str | None = None
    gga: Gga | None = None
    gns: Gns | None = None
    rmc: Rmc | None = None
    gll: Gll | None = None
    vtg: Vtg | None = None
    gsa_seen: bool = False
    fix_type: int | None = None
    used: set[tuple[str, int]] = field(default_factory=set)
    pdop: float | None = None
    hdop: float | None = None
    vdop: float | None = None
    sky_updated: bool = False
    stale: bool = False


@dataclass(slots=True)
class _GsvGroup:
    """A GSV group being assembled from its parts."""

    total: int
    next_part: int
    sats: set[tuple[str, int]]


class NmeaDecoder:
    """Decode an NMEA 0183 byte stream into per-epoch samples; never raises on bad input."""

    def __init__(self, settings: NmeaRead | None = None) -> None:
        self.settings = settings if settings is not None else NmeaRead()
        self.stats = DecodeStats()
        self._framer = NmeaFramer(self.settings.max_sentence_bytes)
        self._checksumless = frozenset(s.upper() for s in self.settings.checksumless)
        self._epoch = _Epoch()
        self._date: tuple[int, int, int] | None = None
        self._date_tod = 0
        self._last_gga_tod: dict[str, int] = {}
        self._groups: dict[tuple[str, int | None], _GsvGroup] = {}
        self._sky: dict[tuple[str, int | None], tuple[int, frozenset[tuple[str, int]]]] = {}
        self._ender: str | None = None
        self._ender_candidate: str | None = None
        # Receivers repeat GSA/GSV/VTG lines verbatim while the sky does not change (43% of the gpsd
        # corpus): the typed records are immutable, so a repeated line reuses its record, checksum included.
        self._recent: dict[bytes, NmeaSentence] = {}

    def feed(self, data: bytes, now_ms: int) -> list[Sample]:
        """Consume `data`; return the samples of every epoch it completes."""
        out: list[Sample] = []
        counts = self.stats.counts
        good = 0
        recent = self._recent
        for line in self._framer.feed(data):
            msg = recent.get(line)
            if msg is None:
                try:
                    msg = parse_body(split_sentence(line, self._checksumless)[0])
                except NmeaError as exc:
                    counts[exc.reason] += 1
                    continue
                if len(recent) >= RECENT_LINES:
                    del recent[next(iter(recent))]
                recent[line] = msg
            good += 1
            self._apply(msg, now_ms, out)
        if good:
            counts["sentences"] += good
        if self._framer.counts:
            counts.update(self._framer.counts)
            self._framer.counts.clear()
        return out

    def flush(self, now_ms: int) -> list[Sample]:
        """Emit the epoch in progress (at the end of a stream, or after a silence); idempotent."""
        out: list[Sample] = []
        if self._epoch.kinds:
            self._emit(self._epoch, now_ms, out)
            self._epoch = _Epoch()
        return out

    def _apply(self, msg: NmeaSentence, now_ms: int, out: list[Sample]) -> None:
        # Ordered by how often receivers send each type.
        if isinstance(msg, Gsv):
            kind = msg.talker + "GSV"
            ep = self._enter(kind, None, False, now_ms, out)
            self._on_gsv(ep, msg, now_ms)
        elif isinstance(msg, Gsa):
            kind = msg.talker + "GSA"
            ep = self._enter(kind, None, False, now_ms, out)
            self._on_gsa(ep, msg)
        elif isinstance(msg, Gga):
            kind = msg.talker + "GGA"
            ep = self._enter(kind, msg.time_ms, True, now_ms, out)
            self._on_gga(ep, msg)
        elif isinstance(msg, Rmc):
            kind = msg.talker + "RMC"
            ep = self._enter(kind, msg.time_ms, True, now_ms, out)
            if ep.rmc is None or (not _rmc_fix(ep.rmc) and _rmc_fix(msg)):
                ep.rmc = msg
            if msg.date is not None and msg.status in ("A", "D"):
                ep.date = msg.date
        elif isinstance(msg, Vtg):
            kind = msg.talker + "VTG"
            ep = self._enter(kind, None, True, now_ms, out)
            ep.vtg = msg
        elif isinstance(msg, Gns):
            kind = msg.talker + "GNS"
            ep = self._enter(kind, msg.time_ms, True, now_ms, out)
            if ep.gns is None or (not _gns_fix(ep.gns) and _gns_fix(msg)):
                ep.gns = msg
        elif isinstance(msg, Gll):
            kind = msg.talker + "GLL"
            ep = self._enter(kind, msg.time_ms, True, now_ms, out)
            if ep.gll is None or (not _gll_fix(ep.gll) and _gll_fix(msg)):
                ep.gll = msg
        elif isinstance(msg, Zda):
            kind = msg.talker + "ZDA"
            ep = self._enter(kind, msg.time_ms, True, now_ms, out)
            if msg.date is not None:
                ep.date = msg.date
        else:
            self.stats.counts["ignored"] += 1
            return
        if kind == self._ender and ep.tod is not None:
            self._emit(ep, now_ms, out)
            self._epoch = _Epoch()

    def _enter(
        self, kind: str, tod: int | None, repeat_splits: bool, now_ms: int, out: list[Sample]
    ) -> _Epoch:
        """Return the epoch a sentence of `kind` at time of day `tod` belongs to, ending the current one first
        when the time changed or (for once-per-cycle types) the kind repeats."""
        ep = self._epoch
        kinds = ep.kinds
        if tod is not None and ep.tod is not None and tod != ep.tod:
            ep = self._boundary(now_ms, out, tod)
            kinds = ep.kinds
        elif repeat_splits and kind in kinds:
            ep = self._boundary(now_ms, out, tod if tod is not None else ep.tod)
            kinds = ep.kinds
        if tod is not None and ep.tod is None:
            ep.tod = tod
        kinds[kind] = kinds.get(kind, 0) + 1
        ep.last_kind = kind
        return ep

    def _boundary(self, now_ms: int, out: list[Sample], tod: int | None) -> _Epoch:
        """End the current epoch without its cycle ender: learn (or unlearn) the ender, emit, start anew."""
        ep = self._epoch
        last = ep.last_kind if ep.last_kind is not None and ep.kinds.get(ep.last_kind) == 1 else None
        if self._ender is not None:
            self._ender = None
        elif last is not None and last == self._ender_candidate:
            self._ender = last
        self._ender_candidate = last
        self._emit(ep, now_ms, out)
        self._epoch = _Epoch(tod=tod)
        return self._epoch

    def _on_gga(self, ep: _Epoch, msg: Gga) -> None:
        if msg.time_ms is not None:
            if self._last_gga_tod.get(msg.talker) == msg.time_ms:
                ep.stale = True
            self._last_gga_tod[msg.talker] = msg.time_ms
        if ep.gga is None or (not _gga_fix(ep.gga) and _gga_fix(msg)):
            ep.gga = msg

    def _on_gsa(self, ep: _Epoch, msg: Gsa) -> None:
        ep.gsa_seen = True
        if msg.fix_type is not None and (ep.fix_type is None or msg.fix_type > ep.fix_type):
            ep.fix_type = msg.fix_type
        for svid in msg.svids:
            sat = _satellite(msg.talker, svid, msg.system_id)
            if sat is not None:
                ep.used.add(sat)
        if ep.pdop is None and msg.pdop is not None and msg.pdop < MAX_DOP:
            ep.pdop = msg.pdop
        if ep.hdop is None and msg.hdop is not None and msg.hdop < MAX_DOP:
            ep.hdop = msg.hdop
        if ep.vdop is None and msg.vdop is not None and msg.vdop < MAX_DOP:
            ep.vdop = msg.vdop

    def _on_gsv(self, ep: _Epoch, msg: Gsv, now_ms: int) -> None:
        key = (msg.talker, msg.signal_id)
        talker = msg.talker
        sats: set[tuple[str, int]] = set()
        for sat in msg.sats:
            found = _satellite(talker, sat.svid, None)
            if found is not None:
                sats.add(found)
        group = self._groups.get(key)
        if msg.part == 1:
            group = self._groups[key] = _GsvGroup(msg.total, 2, sats)
        elif group is not None and group.total == msg.total and group.next_part == msg.part:
            group.sats |= sats
            group.next_part += 1
        else:
            self.stats.counts["gsv_gap"] += 1
            self._groups.pop(key, None)
            return
        if msg.part == msg.total:
            del self._groups[key]
            self._sky[key] = (now_ms, frozenset(group.sats))
            for old in [k for k, (seen, _) in self._sky.items() if now_ms - seen > SKY_TTL_MS]:
                del self._sky[old]
            ep.sky_updated = True

    def _emit(self, ep: _Epoch, now_ms: int, out: list[Sample]) -> None:
        """Append the samples of a finished epoch to `out`."""
        ts: int | None = None
        suspect = False
        if ep.tod is not None:
            ts = self._timestamp(ep, now_ms)
            suspect = abs(ts - now_ms) > CLOCK_WINDOW_MS
        values: dict[str, float] = {}
        position = self._position(ep, values)
        if position is None:
            if ep.tod is not None:
                self.stats.counts["no_fix"] += 1
        else:
            values["latitude"], values["longitude"] = position
            self.stats.counts["fixes"] += 1
        if ep.gga is not None and ep.gga.quality is not None:
            values["fix_quality"] = float(ep.gga.quality)
        hdop = _dop(ep.gga.hdop if ep.gga is not None else None)
        if hdop is None:
            hdop = _dop(ep.gns.hdop if ep.gns is not None else None)
        if hdop is None:
            hdop = ep.hdop
        for key, value in (("hdop", hdop), ("pdop", ep.pdop), ("vdop", ep.vdop)):
            if value is not None:
                values[key] = value
        used = ep.gga.sats_used if ep.gga is not None else None
        if used is None and ep.gns is not None:
            used = ep.gns.sats_used
        if used is None and ep.gsa_seen:
            used = len(ep.used)
        if used is not None:
            values["sats_used"] = float(used)
        if ep.gsa_seen:
            _count_per_constellation(ep.used, _USED_KEYS, values)
        if ep.sky_updated:
            in_view: set[tuple[str, int]] = set()
            for _, sats in self._sky.values():
                in_view |= sats
            _count_per_constellation(in_view, _IN_VIEW_KEYS, values)
        stale = ep.stale
        out.extend([Sample(key, value, ts, None, stale, suspect) for key, value in values.items()])

    def _position(self, ep: _Epoch, values: dict[str, float]) -> tuple[float, float] | None:
        """Return the epoch's valid position (and fill altitude, speed, course), or None."""
        lat = lon = alt = speed = course = None
        if ep.gga is not None and _gga_fix(ep.gga):
            lat, lon, alt = ep.gga.latitude, ep.gga.longitude, ep.gga.altitude
        elif ep.gns is not None and _gns_fix(ep.gns):
            lat, lon, alt = ep.gns.latitude, ep.gns.longitude, ep.gns.altitude
        elif ep.rmc is not None and _rmc_fix(ep.rmc):
            lat, lon = ep.rmc.latitude, ep.rmc.longitude
        elif ep.gll is not None and _gll_fix(ep.gll) and ep.fix_type != 1:
            lat, lon = ep.gll.latitude, ep.gll.longitude
        if lat is None or lon is None:
            return None
        if lat == 0.0 and lon == 0.0:
            self.stats.counts["null_island"] += 1
            return None
        if ep.rmc is not None and _rmc_fix(ep.rmc):
            speed, course = ep.rmc.speed, ep.rmc.course
        if ep.vtg is not None and ep.vtg.mode != "N":
            speed = ep.vtg.speed if speed is None else speed
            course = ep.vtg.course if course is None else course
        for key, value in (("altitude", alt), ("speed", speed), ("course", course)):
            if value is not None:
                values[key] = value
        return lat, lon

    def _timestamp(self, ep: _Epoch, now_ms: int) -> int:
        """Join the epoch's time of day with its date (see the module docstring)."""
        tod = ep.tod
        assert tod is not None
        if ep.date is not None:
            day = _day_number(ep.date)
        elif self._date is not None:
            day = _day_number(self._date)
            if self._date_tod - tod > DAY_MS // 2:
                day += 1  # the time of day went back across UTC midnight (08:00 in China)
        else:
            today = now_ms // DAY_MS
            return min(((today + d) * DAY_MS + tod for d in (-1, 0, 1)), key=lambda t: abs(t - now_ms))
        self._date = _civil(day)
        self._date_tod = tod
        return day * DAY_MS + tod


def _count_per_constellation(
    sats: set[tuple[str, int]], keys: dict[str, str], values: dict[str, float]
) -> None:
    """Put the number of `sats` of each of the six constellations into `values` under `keys`."""
    counts = dict.fromkeys(keys.values(), 0.0)
    for name, _ in sats:
        key = keys.get(name)
        if key is not None:
            counts[key] += 1.0
    values.update(counts)


def _gga_fix(msg: Gga) -> bool:
    return msg.quality is not None and 1 <= msg.quality <= 7 and msg.latitude is not None


def _rmc_fix(msg: Rmc) -> bool:
    return msg.status in ("A", "D") and msg.latitude is not None


def _gns_fix(msg: Gns) -> bool:
    return msg.mode is not None and not _GNS_FIX.isdisjoint(msg.mode) and msg.latitude is not None


def _gll_fix(msg: Gll) -> bool:
    return msg.status == "A" and msg.mode != "N" and msg.latitude is not None


def _dop(value: float | None) -> float | None:
    return value if value is not None and value < MAX_DOP else None


def _day_number(ymd: tuple[int, int, int]) -> int:
    try:
        return (date(*ymd) - _EPOCH_DAY).days
    except ValueError:  # 31 February and the like: keep the month's last valid day
        year, month, _ = ymd
        first_next = date(year + month // 12, month % 12 + 1, 1)
        return (first_next - timedelta(days=1) - _EPOCH_DAY).days


def _civil(day: int) -> tuple[int, int, int]:
    d = _EPOCH_DAY + timedelta(days=day)
    return d.year, d.month, d.day
