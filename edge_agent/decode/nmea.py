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
VTG while the sky is unchanged) reuses its record, and what the epochs read of it, from a cache of recent
lines instead of being checked and parsed again; the per-constellation counts of an unchanged sky or set
of used satellites are computed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from itertools import repeat
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
    Ignored,
    NmeaChecksumError,
    NmeaError,
    NmeaFramingError,
    NmeaSentence,
    Rmc,
    SatInView,
    UnknownSentence,
    Vtg,
    Zda,
    parse_framed,
    parse_sentence,
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
RECENT_LINES: Final = 256
# DOPs of 99 and more are the receivers' way of saying "unknown".
MAX_DOP: Final = 99.0
_EPOCH_DAY: Final = date(1970, 1, 1)
_USED_KEYS: Final = tuple((name, f"sats_used_{name}") for name in CONSTELLATIONS)
_IN_VIEW_KEYS: Final = tuple((name, f"sats_in_view_{name}") for name in CONSTELLATIONS)
# The mapping is pure and receivers use few distinct numbers: memoize it.
_satellite: Final = lru_cache(maxsize=4096)(satellite)
_GNS_FIX: Final = frozenset("ADPRFE")
# A sentence as the epochs read it: the record, its kind (`GPGSV`; "" for a type the epochs ignore), its time
# of day, whether a repeat of the kind within an epoch ends the epoch, and the satellites a GSA or GSV names.
_Typed = tuple[NmeaSentence, str, int | None, bool, tuple[tuple[str, int], ...]]
_KINDS: Final[dict[type, str]] = {
    Gsv: "GSV",
    Gsa: "GSA",
    Gga: "GGA",
    Rmc: "RMC",
    Vtg: "VTG",
    Gns: "GNS",
    Gll: "GLL",
    Zda: "ZDA",
}


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
        # The per-constellation counts of the sky; None once the sky changed. A still sky is counted once.
        self._in_view: tuple[tuple[str, float], ...] | None = None
        self._ender: str | None = None
        self._ender_candidate: str | None = None
        # Receivers repeat GSA/GSV/VTG lines verbatim while the sky does not change (43% of the gpsd
        # corpus): the typed records are immutable, so a repeated line reuses its record, checksum included,
        # and what the epochs read of it (see _Typed).
        self._recent: dict[bytes, _Typed] = {}

    def feed(self, data: bytes, now_ms: int) -> list[Sample]:
        """Consume `data`; return the samples of every epoch it completes."""
        out: list[Sample] = []
        counts = self.stats.counts
        good = 0
        recent = self._recent
        apply = self._apply
        for line in self._framer.feed(data):
            typed = recent.get(line)
            if typed is None:
                try:
                    msg = parse_framed(line, self._checksumless)
                except NmeaError as exc:
                    counts[exc.reason] += 1
                    continue
                if len(recent) >= RECENT_LINES:
                    del recent[next(iter(recent))]
                typed = recent[line] = _typed(msg)
            good += 1
            apply(typed, now_ms, out)
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

    def _apply(self, typed: _Typed, now_ms: int, out: list[Sample]) -> None:
        """Add one sentence to the epoch it belongs to, ending the current epoch first when the time of day
        changed or (for once-per-cycle types) the kind repeats; emit at the learned cycle ender."""
        msg, kind, tod, splits, sats = typed
        if not kind:
            self.stats.counts["ignored"] += 1
            return
        ep = self._epoch
        if tod is not None and ep.tod is not None and tod != ep.tod:
            ep = self._boundary(now_ms, out, tod)
        elif splits and kind in ep.kinds:
            ep = self._boundary(now_ms, out, tod if tod is not None else ep.tod)
        if ep.tod is None:
            ep.tod = tod
        kinds = ep.kinds
        kinds[kind] = kinds.get(kind, 0) + 1
        ep.last_kind = kind
        # Ordered by how often receivers send each type.
        if isinstance(msg, Gsv):
            self._on_gsv(ep, msg, sats, now_ms)
        elif isinstance(msg, Gsa):
            self._on_gsa(ep, msg, sats)
        elif isinstance(msg, Gga):
            self._on_gga(ep, msg)
        elif isinstance(msg, Rmc):
            if ep.rmc is None or (not _rmc_fix(ep.rmc) and _rmc_fix(msg)):
                ep.rmc = msg
            if msg.date is not None and msg.status in ("A", "D"):
                ep.date = msg.date
        elif isinstance(msg, Vtg):
            ep.vtg = msg
        elif isinstance(msg, Gns):
            if ep.gns is None or (not _gns_fix(ep.gns) and _gns_fix(msg)):
                ep.gns = msg
        elif isinstance(msg, Gll):
            if ep.gll is None or (not _gll_fix(ep.gll) and _gll_fix(msg)):
                ep.gll = msg
        elif isinstance(msg, Zda) and msg.date is not None:
            ep.date = msg.date
        if kind == self._ender and ep.tod is not None:
            self._emit(ep, now_ms, out)
            self._epoch = _Epoch()

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

    def _on_gsa(self, ep: _Epoch, msg: Gsa, sats: tuple[tuple[str, int], ...]) -> None:
        ep.gsa_seen = True
        if msg.fix_type is not None and (ep.fix_type is None or msg.fix_type > ep.fix_type):
            ep.fix_type = msg.fix_type
        ep.used.update(sats)
        if ep.pdop is None and msg.pdop is not None and msg.pdop < MAX_DOP:
            ep.pdop = msg.pdop
        if ep.hdop is None and msg.hdop is not None and msg.hdop < MAX_DOP:
            ep.hdop = msg.hdop
        if ep.vdop is None and msg.vdop is not None and msg.vdop < MAX_DOP:
            ep.vdop = msg.vdop

    def _on_gsv(self, ep: _Epoch, msg: Gsv, sats: tuple[tuple[str, int], ...], now_ms: int) -> None:
        key = (msg.talker, msg.signal_id)
        group = self._groups.get(key)
        if msg.part == 1:
            group = self._groups[key] = _GsvGroup(msg.total, 2, set(sats))
        elif group is not None and group.total == msg.total and group.next_part == msg.part:
            group.sats.update(sats)
            group.next_part += 1
        else:
            self.stats.counts["gsv_gap"] += 1
            self._groups.pop(key, None)
            return
        if msg.part == msg.total:
            del self._groups[key]
            sky = frozenset(group.sats)
            previous = self._sky.get(key)
            if previous is None or previous[1] != sky:
                self._in_view = None
            self._sky[key] = (now_ms, sky)
            for old in [k for k, (seen, _) in self._sky.items() if now_ms - seen > SKY_TTL_MS]:
                del self._sky[old]
                self._in_view = None
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
            values.update(_per_constellation(frozenset(ep.used), _USED_KEYS))
        if ep.sky_updated:
            if self._in_view is None:
                in_view: set[tuple[str, int]] = set()
                for _, sats in self._sky.values():
                    in_view |= sats
                self._in_view = _per_constellation(frozenset(in_view), _IN_VIEW_KEYS)
            values.update(self._in_view)
        out += map(Sample, values, values.values(), repeat(ts), repeat(None), repeat(ep.stale), repeat(suspect))

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


def _typed(msg: NmeaSentence) -> _Typed:
    """Return what the epochs read of a sentence record (see _Typed)."""
    if isinstance(msg, Ignored):
        return msg, "", None, False, ()
    kind = msg.talker + _KINDS[type(msg)]
    if isinstance(msg, (Gsv, Gsa)):
        return msg, kind, None, False, _satellites(msg)
    # A type without a time of day of its own, sent once per cycle (VTG), ends the epoch when it repeats.
    return msg, kind, None if isinstance(msg, Vtg) else msg.time_ms, True, ()


def _satellites(msg: NmeaSentence) -> tuple[tuple[str, int], ...]:
    """Return the satellites a GSA uses or a GSV shows, as (constellation, number); empty for others."""
    if isinstance(msg, Gsv):
        found = map(_satellite, repeat(msg.talker), [sat.svid for sat in msg.sats], repeat(None))
    elif isinstance(msg, Gsa):
        found = map(_satellite, repeat(msg.talker), msg.svids, repeat(msg.system_id))
    else:
        return ()
    return tuple(filter(None, found))  # unknown numbers map to None


@lru_cache(maxsize=256)
def _per_constellation(
    sats: frozenset[tuple[str, int]], keys: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, float], ...]:
    """Return (key, count) of `sats` for each (constellation, key); memoized, as the sky changes slowly."""
    names = [name for name, _ in sats]
    return tuple([(key, float(names.count(name))) for name, key in keys])


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


@lru_cache(maxsize=16)
def _day_number(ymd: tuple[int, int, int]) -> int:
    try:
        return (date(*ymd) - _EPOCH_DAY).days
    except ValueError:  # 31 February and the like: keep the month's last valid day
        year, month, _ = ymd
        first_next = date(year + month // 12, month % 12 + 1, 1)
        return (first_next - timedelta(days=1) - _EPOCH_DAY).days


@lru_cache(maxsize=16)
def _civil(day: int) -> tuple[int, int, int]:
    d = _EPOCH_DAY + timedelta(days=day)
    return d.year, d.month, d.day
