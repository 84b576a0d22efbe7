"""A satellite's NMEA talker, number and System ID in, its constellation and number in that system out.

Follows gpsd's `nmeaid_to_prn` (drivers/driver_nmea0183.c):

* With an NMEA 4.10 System ID: 1 GPS (33-64 and 152-158 are SBAS, 193-199 QZSS, 201-264 BeiDou as
  Quectel numbers them), 2 GLONASS (65-96 or 1-64), 3 Galileo (1-99, 101-199, 301-399), 4 BeiDou
  (1-99, 201-299, 401-499), 5 QZSS (1-99, 193-199), 6 NavIC.
* Without one, a single-system talker implies its System ID (GA Galileo, GB/BD/PQ BeiDou, GI NavIC,
  GL GLONASS, GQ/QZ QZSS), as gpsd's GSA/GSV do. GP, GN and unknown talkers use the legacy ranges:
  1-32 GPS, 33-64 SBAS, 65-96 GLONASS, 120-158 SBAS, 173-182 IMES, 193-197 QZSS, 201-237 BeiDou,
  301-356 Galileo, 401-437 BeiDou.

SBAS (and IMES) satellites are not counted under any of our six constellations, as gpsd's SKY gives
them a gnssid of their own (1): they augment GPS but are not GPS satellites. Quectel EC2x `PQ`
sentences carry BeiDou, as gpsd maps them.
"""

from __future__ import annotations

from typing import Final

CONSTELLATIONS: Final = ("gps", "glonass", "galileo", "beidou", "qzss", "navic")
SBAS: Final = "sbas"
IMES: Final = "imes"

SYSTEM_IDS: Final = {1: "gps", 2: "glonass", 3: "galileo", 4: "beidou", 5: "qzss", 6: "navic"}

TALKER_SYSTEM_IDS: Final = {"GA": 3, "GB": 4, "BD": 4, "PQ": 4, "GI": 6, "GL": 2, "GQ": 5, "QZ": 5}


def satellite(talker: str, number: int, system_id: int | None = None) -> tuple[str, int] | None:
    """Return (constellation, number within it) of a satellite, or None if the number is unknown."""
    if number < 1:
        return None
    if not system_id:
        system_id = TALKER_SYSTEM_IDS.get(talker)
    if system_id:
        return _by_system(system_id, number)
    if number <= 32:
        return "gps", number
    return _by_range(number)


def _by_system(system_id: int, n: int) -> tuple[str, int] | None:
    if system_id == 1:
        if n <= 32:
            return "gps", n
        if n <= 64 or 152 <= n <= 158:
            return SBAS, n
        if 193 <= n <= 199:
            return "qzss", n - 192
        if 201 <= n <= 264:
            return "beidou", n - 200
        return None
    if system_id == 2:
        return "glonass", n - 64 if n > 64 else n
    if system_id == 3:
        return _offset("galileo", n)
    if system_id == 4:
        return _offset("beidou", n)
    if system_id == 5:
        return "qzss", n - 192 if n >= 193 else n
    if system_id == 6:
        return "navic", n
    return None


def _offset(name: str, n: int) -> tuple[str, int] | None:
    if n < 100:
        return name, n
    if 100 < n < 500 and n % 100:
        return name, n % 100
    return None


def _by_range(n: int) -> tuple[str, int] | None:
    if n <= 64:
        return SBAS, n + 87
    if n <= 96:
        return "glonass", n - 64
    if 120 <= n <= 158:
        return SBAS, n
    if 173 <= n <= 182:
        return IMES, n - 172
    if 193 <= n <= 197:
        return "qzss", n - 192
    if 201 <= n <= 237:
        return "beidou", n - 200
    if 301 <= n <= 356:
        return "galileo", n - 300
    if 401 <= n <= 437:
        return "beidou", n - 400
    return None
