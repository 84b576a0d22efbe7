"""NMEA 0183 4.11 sentence encoding: a fix and its satellites in, checksummed CRLF sentences out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

KNOTS_PER_MPS: Final = 3600.0 / 1852.0


@dataclass(frozen=True, slots=True)
class System:
    """A constellation as NMEA 4.11 names it: GSV talker, GSA System ID and the signal we report."""

    name: str
    talker: str
    system_id: int
    # Signal ID from each system's 4.11 table: GPS L1 C/A, GLONASS G1 C/A, BeiDou B1I = 1; Galileo E1 = 7.
    signal_id: int


SYSTEMS: Final[dict[str, System]] = {
    "gps": System("gps", "GP", 1, 1),
    "glonass": System("glonass", "GL", 2, 1),
    "galileo": System("galileo", "GA", 3, 7),
    "beidou": System("beidou", "GB", 4, 1),
}
# GNS mode characters are ordered GPS, GLONASS, Galileo, BeiDou, QZSS, NavIC.
_GNS_ORDER: Final = ("gps", "glonass", "galileo", "beidou")


@dataclass(frozen=True, slots=True)
class Satellite:
    """One satellite in view."""

    system: str
    prn: int
    elevation: int
    azimuth: int
    snr: int | None
    used: bool


@dataclass(frozen=True, slots=True)
class Fix:
    """One navigation epoch: UTC time, position, motion and dilution of precision."""

    time: datetime
    latitude: float
    longitude: float
    altitude_m: float
    geoid_sep_m: float
    speed_mps: float
    course_deg: float
    hdop: float
    pdop: float
    vdop: float
    quality: int = 1
    sats_used: int = 0


def checksum(body: str) -> int:
    """XOR of the bytes between `$` and `*`."""
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return value


def sentence(address: str, fields: Sequence[str]) -> bytes:
    """Return `$ADDRESS,f1,f2,…*HH\\r\\n` with its checksum."""
    body = ",".join([address, *fields])
    return f"${body}*{checksum(body):02X}\r\n".encode("ascii")


def time_field(t: datetime) -> str:
    """Format a UTC time as hhmmss.ss."""
    centis = t.microsecond // 10000
    return f"{t.hour:02d}{t.minute:02d}{t.second:02d}.{centis:02d}"


def _angle(value: float, degree_digits: int) -> str:
    degrees = int(abs(value))
    minutes = (abs(value) - degrees) * 60.0
    text = f"{degrees:0{degree_digits}d}{minutes:08.5f}"
    # 59.999995 rounds up to 60.00000: carry into the degrees instead.
    if text.endswith("60.00000"):
        text = f"{degrees + 1:0{degree_digits}d}00.00000"
    return text


def lat_fields(lat: float) -> list[str]:
    """Format a latitude as [ddmm.mmmmm, N|S]."""
    return [_angle(lat, 2), "N" if lat >= 0 else "S"]


def lon_fields(lon: float) -> list[str]:
    """Format a longitude as [dddmm.mmmmm, E|W]."""
    return [_angle(lon, 3), "E" if lon >= 0 else "W"]


def rmc(fix: Fix, talker: str = "GN") -> bytes:
    """Encode RMC with the 4.10 mode indicator and the 4.11 navigational status."""
    valid = fix.quality > 0
    return sentence(
        f"{talker}RMC",
        [
            time_field(fix.time),
            "A" if valid else "V",
            *lat_fields(fix.latitude),
            *lon_fields(fix.longitude),
            f"{fix.speed_mps * KNOTS_PER_MPS:.3f}",
            f"{fix.course_deg:.2f}",
            fix.time.strftime("%d%m%y"),
            "",
            "",
            "A" if valid else "N",
            "V",
        ],
    )


def gga(fix: Fix, talker: str = "GN") -> bytes:
    """Encode GGA."""
    return sentence(
        f"{talker}GGA",
        [
            time_field(fix.time),
            *lat_fields(fix.latitude),
            *lon_fields(fix.longitude),
            str(fix.quality),
            f"{fix.sats_used:02d}",
            f"{fix.hdop:.2f}",
            f"{fix.altitude_m:.1f}",
            "M",
            f"{fix.geoid_sep_m:.1f}",
            "M",
            "",
            "",
        ],
    )


def gns(fix: Fix, systems_used: Sequence[str], talker: str = "GN") -> bytes:
    """Encode GNS with one mode character per constellation and the 4.11 navigational status."""
    mode = "".join("A" if name in systems_used and fix.quality > 0 else "N" for name in _GNS_ORDER)
    return sentence(
        f"{talker}GNS",
        [
            time_field(fix.time),
            *lat_fields(fix.latitude),
            *lon_fields(fix.longitude),
            mode,
            f"{fix.sats_used:02d}",
            f"{fix.hdop:.2f}",
            f"{fix.altitude_m:.1f}",
            f"{fix.geoid_sep_m:.1f}",
            "",
            "",
            "V",
        ],
    )


def gsa(fix: Fix, system: System, used: Sequence[int], talker: str = "GN") -> bytes:
    """Encode one GSA for one constellation, ending in its 4.11 System ID."""
    ids = [f"{prn:02d}" for prn in used[:12]]
    ids += [""] * (12 - len(ids))
    mode = "3" if fix.quality > 0 else "1"
    return sentence(
        f"{talker}GSA",
        ["A", mode, *ids, f"{fix.pdop:.2f}", f"{fix.hdop:.2f}", f"{fix.vdop:.2f}", f"{system.system_id:X}"],
    )


def gsv(system: System, sats: Sequence[Satellite]) -> list[bytes]:
    """Encode the GSV group of one constellation (4 satellites a sentence), each ending in its Signal ID."""
    total = max(1, math.ceil(len(sats) / 4))
    out = []
    for index in range(total):
        fields = [str(total), str(index + 1), f"{len(sats):02d}"]
        for sat in sats[index * 4 : index * 4 + 4]:
            snr = "" if sat.snr is None else f"{sat.snr:02d}"
            fields += [f"{sat.prn:02d}", f"{sat.elevation:02d}", f"{sat.azimuth:03d}", snr]
        fields.append(f"{system.signal_id:X}")
        out.append(sentence(f"{system.talker}GSV", fields))
    return out


def zda(t: datetime, talker: str = "GN") -> bytes:
    """Encode ZDA (UTC date and time, local zone 00:00)."""
    return sentence(f"{talker}ZDA", [time_field(t), f"{t.day:02d}", f"{t.month:02d}", f"{t.year:04d}", "00", "00"])
