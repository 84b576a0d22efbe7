"""One NMEA 0183 sentence (bytes, without line ending) in, one typed, immutable sentence record out.

pynmea2 is only the tokenizer (talker, sentence type, raw fields); the typing is ours, because pynmea2
misreads modern receivers: it turns empty fields into 0.0, reads the NMEA 4.10 Signal ID of GSV as a
satellite, and its `is_valid` rejects valid RMC fixes whose NMEA 4.1 navigation status is `V`. Here an
empty field is None, numbers are numbers, and no validity is decided: the epoch layer does that.

Speed (a gateway reads every sentence of every receiver): `parse_framed` takes the lines NmeaFramer cut
and checks the checksum with one lookup and one fold; a talker sentence with a plain upper-case address
(nearly all of them) is cut at its commas directly, exactly where pynmea2's grammar would cut it, and only
the rest (proprietary, queries, odd addresses) goes through that grammar. Field conversions that repeat
from sentence to sentence (time of day, date, position, satellite blocks) are memoized.

Errors (all `NmeaError`, a `DecodeError`; `reason` is the stats outcome name)::

    NmeaError                 "malformed"
     ├── NmeaFramingError     "framing"          not `$...`, binary bytes, too long
     ├── NmeaChecksumError    "checksum"         bad or missing checksum
     ├── UnknownSentence      "unknown_sentence" pynmea2 does not know the sentence type
     └── MalformedSentence    "malformed"        a field does not hold what its type needs
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from functools import lru_cache
from typing import Final, NamedTuple

import pynmea2

from device_profiles.schema import NmeaRead
from edge_agent.decode.base import DecodeError

KNOT_MS: Final = 1852.0 / 3600.0
KMH_MS: Final = 1.0 / 3.6

_PRINTABLE: Final = re.compile(rb"[^\x20-\x7e]")
_SENTENCE_RE: Final = pynmea2.NMEASentence.sentence_re
_PYNMEA2_TYPES: Final = frozenset(pynmea2.TalkerSentence.sentence_types)
_HEX_DIGITS: Final = b"0123456789ABCDEFabcdef"
# The value of every two-hex-digit checksum field, either case: one lookup checks and converts.
_HEX_VALUES: Final = {bytes((a, b)): int(bytes((a, b)), 16) for a in _HEX_DIGITS for b in _HEX_DIGITS}
# Talker IDs the fast tokenizer path takes as they are; any other (lower case, `P`roprietary) takes the
# general pynmea2 grammar.
_ALNUM: Final = string.ascii_uppercase + string.digits
_TALKERS: Final = frozenset(a + b for a in _ALNUM for b in _ALNUM if a != "P")


class NmeaError(DecodeError):
    """A sentence could not be decoded."""

    reason = "malformed"


class NmeaFramingError(NmeaError):
    """The bytes are not one printable `$...` sentence within the size cap."""

    reason = "framing"


class NmeaChecksumError(NmeaError):
    """The checksum is wrong, or missing on a sentence type not allowed to omit it."""

    reason = "checksum"


class UnknownSentence(NmeaError):
    """The tokenizer does not know this sentence type."""

    reason = "unknown_sentence"


class MalformedSentence(NmeaError):
    """A field holds something its type cannot be."""

    reason = "malformed"


class Gga(NamedTuple):
    """Global positioning fix data."""

    talker: str
    time_ms: int | None
    latitude: float | None
    longitude: float | None
    quality: int | None
    sats_used: int | None
    hdop: float | None
    altitude: float | None


class Rmc(NamedTuple):
    """Recommended minimum data: status `A`/`D` valid, `V` invalid; speed in m/s."""

    talker: str
    time_ms: int | None
    status: str | None
    latitude: float | None
    longitude: float | None
    speed: float | None
    course: float | None
    date: tuple[int, int, int] | None
    mode: str | None
    nav_status: str | None


class Gns(NamedTuple):
    """Multi-constellation fix data; `mode` holds one FAA mode letter per system."""

    talker: str
    time_ms: int | None
    latitude: float | None
    longitude: float | None
    mode: str | None
    sats_used: int | None
    hdop: float | None
    altitude: float | None
    nav_status: str | None


class Gll(NamedTuple):
    """Geographic position: status `A` valid, `V` invalid."""

    talker: str
    time_ms: int | None
    latitude: float | None
    longitude: float | None
    status: str | None
    mode: str | None


class Vtg(NamedTuple):
    """Course and speed over ground; speed in m/s."""

    talker: str
    course: float | None
    speed: float | None
    mode: str | None


class Zda(NamedTuple):
    """UTC time and full date."""

    talker: str
    time_ms: int | None
    date: tuple[int, int, int] | None


class Gsa(NamedTuple):
    """DOP and the satellites used; `system_id` is the NMEA 4.10 GNSS System ID when sent."""

    talker: str
    fix_type: int | None
    svids: tuple[int, ...]
    pdop: float | None
    hdop: float | None
    vdop: float | None
    system_id: int | None


class SatInView(NamedTuple):
    """One satellite of a GSV sentence."""

    svid: int
    elevation: int | None
    azimuth: int | None
    snr: int | None


class Gsv(NamedTuple):
    """One part of a satellites-in-view group; `signal_id` is the NMEA 4.10 Signal ID when sent."""

    talker: str
    total: int
    part: int
    in_view: int | None
    sats: tuple[SatInView, ...]
    signal_id: int | None


class Ignored(NamedTuple):
    """A well-formed sentence that carries none of our quantities (TXT, GST, proprietary, ...)."""

    talker: str
    kind: str


NmeaSentence = Gga | Rmc | Gns | Gll | Vtg | Zda | Gsa | Gsv | Ignored


# Shifts that fold the upper half of a 2**k-byte integer onto its lower half, halving k each time.
_FOLDS: Final = [[8 << i for i in range(k - 1, -1, -1)] for k in range(14)]


def checksum(body: bytes) -> int:
    """Return the XOR of all bytes of `body`, folding the bytes as one big integer (few Python ops)."""
    x = int.from_bytes(body, "little")
    # Each fold leaves the XORs wanted in the low half and garbage above it, which no later fold reads.
    for shift in _FOLDS[(len(body) - 1).bit_length()]:
        x ^= x >> shift
    return x & 0xFF


def split_sentence(line: bytes, checksumless: frozenset[str] = frozenset()) -> tuple[str, bool]:
    """Check framing and checksum of `$...*HH`; return the body text and whether a checksum was sent."""
    if line[-1:] in (b"\n", b"\r", b" "):
        line = line.rstrip(b"\r\n ")
    if len(line) < 2 or line[0] != 0x24:
        raise NmeaFramingError("a sentence starts with '$'")
    if _PRINTABLE.search(line) is not None:
        raise NmeaFramingError("binary bytes in a sentence")
    star = len(line) - 3
    if star < 1 or line[star] != 0x2A:
        star = line.rfind(b"*")
    if star >= 0:
        sent = _HEX_VALUES.get(line[star + 1 :])
        if sent is None:
            raise NmeaChecksumError("the checksum is not two hex digits")
        body = line[1:star]
        if checksum(body) != sent:
            raise NmeaChecksumError("checksum mismatch")
        return body.decode("ascii"), True
    body = line[1:]
    comma = body.find(b",")
    address = (body if comma < 0 else body[:comma]).decode("ascii").upper()
    if address not in checksumless and address[2:] not in checksumless:
        raise NmeaChecksumError("checksum missing")
    return body.decode("ascii"), False


def parse_sentence(line: bytes, settings: NmeaRead | None = None) -> NmeaSentence:
    """Decode one sentence (`$` to checksum, line ending optional); raise NmeaError if it is bad."""
    allowed = frozenset(s.upper() for s in settings.checksumless) if settings is not None else frozenset()
    body, _ = split_sentence(line, allowed)
    return parse_body(body)


def parse_framed(line: bytes, checksumless: frozenset[str] = frozenset()) -> NmeaSentence:
    """Decode a line as NmeaFramer cuts it (`$` first, no line ending); raise NmeaError if it is bad."""
    # The framer already checked the start and the end: the common case is one lookup, one fold, one scan.
    star = len(line) - 3
    if star > 0 and line[star] == 0x2A:
        sent = _HEX_VALUES.get(line[star + 1 :])
        body = line[1:star]
        if sent is not None and checksum(body) == sent and body.isascii():
            text = body.decode("ascii")
            if text.isprintable():  # for ASCII: nothing outside 0x20-0x7E
                return parse_body(text)
    # Anything else gets the full checks, which name what is wrong.
    return parse_body(split_sentence(line, checksumless)[0])


def parse_body(body: str) -> NmeaSentence:
    """Type the body of a sentence whose framing and checksum were already checked."""
    if "*" in body:
        raise MalformedSentence("'*' inside a sentence")
    # A talker sentence we type, upper case (nearly all of them): its fields are everything after the
    # address, exactly as pynmea2's grammar below would cut them.
    kind = body[2:5]
    if body[5:6] == "," and body[:2] in _TALKERS:
        typer = _TYPERS.get(kind)
        if typer is not None:
            try:
                return typer(body[:2], body[6:].split(","))
            except (ValueError, IndexError) as exc:
                raise MalformedSentence(f"{body[:5]}: {exc}") from exc
        if kind in _PYNMEA2_TYPES:
            return Ignored(body[:2], kind)
    # pynmea2's own sentence grammar tokenizes; its per-sentence objects are skipped (we read raw fields).
    match = _SENTENCE_RE.match(body)
    if match is None or match.group("checksum") is not None:
        comma = body.find(",")
        if (body if comma < 0 else body[:comma]).isalnum():
            # pynmea2 only knows 5-letter talker addresses (and `Pxxx`); others are just unknown to us.
            raise UnknownSentence(f"unknown sentence type in {body[:12]!r}")
        raise MalformedSentence(f"cannot tokenize {body[:12]!r}")
    address: str = match.group("sentence_type").upper()
    data: list[str] = match.group("data").split(",")
    if address[0] == "P" and len(address) == 4:
        return _proprietary(address[1:], data)
    if address[-1] != ",":
        return Ignored(address[:2], "Q")  # a query sentence (`CCGPQ,GGA`)
    talker, kind = address[:2], address[2:5]
    typer = _TYPERS.get(kind)
    if typer is None:
        if kind not in _PYNMEA2_TYPES:
            raise UnknownSentence(f"unknown sentence type {address[:5]!r}")
        return Ignored(talker, kind)
    try:
        return typer(talker, data)
    except (ValueError, IndexError) as exc:
        raise MalformedSentence(f"{talker}{kind}: {exc}") from exc


def _proprietary(manufacturer: str, data: list[str]) -> NmeaSentence:
    # Quectel EC2x send BeiDou as `$PQGSV`/`$PQGSA`; pynmea2 reads manufacturer `QGS` and field `V`/`A`.
    if manufacturer == "QGS" and data and data[0].upper() in ("V", "A"):
        kind = "GS" + data[0].upper()
        try:
            return _TYPERS[kind]("PQ", data[1:])
        except (ValueError, IndexError) as exc:
            raise MalformedSentence(f"PQ{kind}: {exc}") from exc
    return Ignored("P", manufacturer)


def _pad(data: list[str], n: int) -> list[str]:
    # Receivers drop trailing empty fields; missing fields read as empty.
    return data if len(data) >= n else data + [""] * (n - len(data))


def _float(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    if value - value != 0.0:  # inf and nan
        raise ValueError(f"not a finite number: {text!r}")
    return value


# Whole numbers as receivers print them (0-999, also zero-padded: "07", "083"): a lookup, not a parse.
_NUMBERS: Final = {f"{i:0{width}d}": i for width in (1, 2, 3) for i in range(1000)}


def _int(text: str) -> int | None:
    value = _NUMBERS.get(text)
    if value is not None:
        return value
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def time_of_day_ms(text: str) -> int | None:
    """Turn `hhmmss[.sss]` into ms since midnight; second 60 (a leap second) is accepted."""
    if not text:
        return None
    head = text[:6]
    if len(head) < 6 or not head.isdigit():
        raise ValueError(f"bad time {text!r}")
    hhmmss = int(head)
    hh, mm, ss = hhmmss // 10000, hhmmss // 100 % 100, hhmmss % 100
    if hh > 23 or mm > 59 or ss > 60:
        raise ValueError(f"bad time {text!r}")
    ms = 0
    if len(text) > 6:
        digits = text[7:]
        if text[6] != "." or not (digits.isdigit() or not digits):
            raise ValueError(f"bad time {text!r}")
        if digits:
            ms = int((digits + "00")[:3])  # milliseconds, finer digits truncated
    return ((hh * 60 + mm) * 60 + ss) * 1000 + ms


# Fields repeat: every sentence of an epoch carries the same time of day, RMC the same date all day,
# GGA/RMC/GLL the same position text, and GSV the same satellite blocks while the sky holds still.
# The conversions are pure, so they are memoized (errors are raised again, never cached).
_time_of_day: Final = lru_cache(maxsize=64)(time_of_day_ms)


def _angle(value: str, hemi: str, negative: str, positive: str, max_degrees: int) -> float:
    # NMEA writes dddmm.mmmm: degrees times 100 plus minutes.
    if not value.replace(".", "", 1).isdigit():
        raise ValueError(f"bad coordinate {value!r}")
    raw = float(value)
    degrees = raw // 100.0
    minutes = raw - degrees * 100.0
    if minutes > 60.0:  # exactly 60 is a rounding artifact some receivers (MTK) send
        raise ValueError(f"bad coordinate minutes {value!r}")
    angle = degrees + minutes / 60.0
    if angle > max_degrees:
        raise ValueError(f"coordinate out of range {value!r}")
    if hemi == negative:
        return -angle
    if hemi == positive:
        return angle
    hemi = hemi.upper()
    if hemi == negative:
        return -angle
    if hemi != positive:
        raise ValueError(f"bad hemisphere {hemi!r}")
    return angle


def _latlon(d: list[str], i: int) -> tuple[float | None, float | None]:
    return _position(d[i], d[i + 1], d[i + 2], d[i + 3])


@lru_cache(maxsize=256)
def _position(lat: str, ns: str, lon: str, ew: str) -> tuple[float | None, float | None]:
    if not (lat or ns or lon or ew):
        return None, None
    if not (lat and ns and lon and ew):
        raise ValueError("incomplete coordinates")
    return _angle(lat, ns, "S", "N", 90), _angle(lon, ew, "W", "E", 180)


@lru_cache(maxsize=16)
def _ddmmyy(text: str) -> tuple[int, int, int] | None:
    if not text:
        return None
    if len(text) != 6 or not text.isdigit():
        raise ValueError(f"bad date {text!r}")
    day, month, yy = int(text[0:2]), int(text[2:4]), int(text[4:6])
    # Two-digit years: 80-99 are 1980-1999 (GPS began in 1980), the rest 2000-2079, as gpsd does.
    year = 1900 + yy if yy >= 80 else 2000 + yy
    return _checked_date(year, month, day)


def _checked_date(year: int, month: int, day: int) -> tuple[int, int, int]:
    if not 1900 <= year <= 2999 or not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ValueError(f"bad date {year}-{month}-{day}")
    return year, month, day


def _gga(talker: str, d: list[str]) -> Gga:
    if len(d) < 9:
        d = _pad(d, 9)
    lat, lon = _latlon(d, 1)
    return Gga(talker, _time_of_day(d[0]), lat, lon, _int(d[5]), _int(d[6]), _float(d[7]), _float(d[8]))


def _rmc(talker: str, d: list[str]) -> Rmc:
    if len(d) < 13:
        d = _pad(d, 13)
    lat, lon = _latlon(d, 2)
    speed = _float(d[6])
    return Rmc(
        talker,
        _time_of_day(d[0]),
        d[1].upper() or None,
        lat,
        lon,
        None if speed is None else speed * KNOT_MS,
        _float(d[7]),
        _ddmmyy(d[8]),
        d[11].upper() or None,
        d[12].upper() or None,
    )


def _gns(talker: str, d: list[str]) -> Gns:
    d = _pad(d, 13)
    lat, lon = _latlon(d, 1)
    return Gns(
        talker,
        _time_of_day(d[0]),
        lat,
        lon,
        d[5].upper() or None,
        _int(d[6]),
        _float(d[7]),
        _float(d[8]),
        d[12].upper() or None,
    )


def _gll(talker: str, d: list[str]) -> Gll:
    d = _pad(d, 7)
    lat, lon = _latlon(d, 0)
    return Gll(talker, _time_of_day(d[4]), lat, lon, d[5].upper() or None, d[6].upper() or None)


def _vtg(talker: str, d: list[str]) -> Vtg:
    d = _pad(d, 9)
    knots = _float(d[4])
    kmh = _float(d[6])
    speed = knots * KNOT_MS if knots is not None else (kmh * KMH_MS if kmh is not None else None)
    return Vtg(talker, _float(d[0]), speed, d[8].upper() or None)


def _zda(talker: str, d: list[str]) -> Zda:
    d = _pad(d, 4)
    day, month, year = _int(d[1]), _int(d[2]), _int(d[3])
    date = None
    if day is not None and month is not None and year is not None:
        date = _checked_date(year, month, day)
    return Zda(talker, _time_of_day(d[0]), date)


def _gsa(talker: str, d: list[str]) -> Gsa:
    if len(d) < 17:
        raise ValueError(f"GSA has {len(d)} fields, needs 17")
    # 12 satellite slots is the standard; some receivers send more (CH-4701: 24) and the DOPs are then
    # the last three fields. The NMEA 4.10 System ID makes 18 fields; some SiRF-TriG firmware sends a
    # float there, which is no System ID and is ignored.
    system_id = None
    dops_at = len(d) - 3
    if len(d) == 18:
        dops_at = 14
        system_id = int(d[17]) if d[17].isdigit() else None
    svids = tuple([_NUMBERS.get(s) or int(s) for s in d[2:dops_at] if s])
    if svids and min(svids) <= 0:
        raise ValueError("satellite id 0")
    return Gsa(
        talker,
        _int(d[1]),
        svids,
        _float(d[dops_at]),
        _float(d[dops_at + 1]),
        _float(d[dops_at + 2]),
        system_id,
    )


def _gsv(talker: str, d: list[str]) -> Gsv:
    if len(d) < 3:
        raise ValueError("GSV has no header")
    total, index = _NUMBERS.get(d[0]), _NUMBERS.get(d[1])
    if total is None or index is None:
        total, index = int(d[0]), int(d[1])
    if not 1 <= index <= total:
        raise ValueError("bad GSV part numbers")
    blocks = len(d) - 3
    signal_id = None
    if blocks % 4 == 1:
        # NMEA 4.10: the field after the satellite blocks is the Signal ID, not a satellite.
        signal_id = _int(d[-1])
        blocks -= 1
    elif blocks % 4:
        raise ValueError(f"GSV has {blocks} satellite fields, not a multiple of 4")
    end = 3 + blocks
    # One block of four fields per satellite; empty slots come back as None and are dropped.
    blocks_read = map(_satellite_block, d[3:end:4], d[4:end:4], d[5:end:4], d[6:end:4])
    return Gsv(talker, total, index, _int(d[2]), tuple(filter(None, blocks_read)), signal_id)


@lru_cache(maxsize=1024)
def _satellite_block(svid: str, elevation: str, azimuth: str, snr: str) -> SatInView | None:
    if not svid or svid == "0" or svid == "00":
        return None  # empty trailing slots (Oncore GT+) are not satellites
    number = int(svid)
    if number <= 0:
        raise ValueError(f"bad satellite number {svid!r}")
    return SatInView(
        number,
        int(elevation) if elevation else None,
        int(azimuth) if azimuth else None,
        int(snr) if snr else None,
    )


_TYPERS: Final[dict[str, Callable[[str, list[str]], NmeaSentence]]] = {
    "GGA": _gga,
    "RMC": _rmc,
    "GNS": _gns,
    "GLL": _gll,
    "VTG": _vtg,
    "ZDA": _zda,
    "GSA": _gsa,
    "GSV": _gsv,
}
