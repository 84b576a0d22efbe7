"""A GPS + BeiDou receiver: a looping track and a sky in, NMEA 4.11 epochs out over a pseudo-terminal."""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from gateway.aio import cancel_and_wait
from simulators import nmea_encode as nmea
from simulators.clock import ScenarioClock
from simulators.errors import SimulatorError
from simulators.faults import Faults
from simulators.pty import PtyPort
from simulators.stream import FrameStream

EARTH_RADIUS_M: Final = 6_371_000.0
SENTENCES: Final = ("RMC", "GGA", "GNS", "GSA", "GSV", "ZDA")
DEFAULT_SENTENCES: Final = ("RMC", "GGA", "GSA", "GSV", "ZDA")
# Satellite numbers in view over central China, per constellation.
_PRNS: Final[dict[str, tuple[int, ...]]] = {
    "gps": (3, 6, 11, 14, 17, 19, 22, 24, 28, 32),
    "beidou": (6, 9, 14, 16, 21, 24, 26, 33, 36, 39, 42),
}
_MIN_USED_ELEVATION: Final = 15


@dataclass(frozen=True, slots=True)
class Position:
    """Where the receiver is at one instant and how it moves."""

    latitude: float
    longitude: float
    altitude_m: float
    speed_mps: float
    course_deg: float


@dataclass(frozen=True, slots=True)
class LoopTrack:
    """A counter-clockwise circle of `radius_m` around a centre, driven at `speed_mps`."""

    center_lat: float = 34.80
    center_lon: float = 113.53
    radius_m: float = 300.0
    speed_mps: float = 5.0
    altitude_m: float = 110.0

    def at(self, t: float) -> Position:
        """Return the position at scenario time `t`."""
        theta = self.speed_mps * t / self.radius_m if self.radius_m > 0 else 0.0
        north, east = self.radius_m * math.sin(theta), self.radius_m * math.cos(theta)
        lat = self.center_lat + math.degrees(north / EARTH_RADIUS_M)
        lon = self.center_lon + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(self.center_lat))))
        # Velocity is the derivative of (north, east): along the tangent of the circle.
        v_north, v_east = math.cos(theta), -math.sin(theta)
        course = math.degrees(math.atan2(v_east, v_north)) % 360.0
        altitude = self.altitude_m + 1.5 * math.sin(t / 40.0)
        return Position(lat, lon, altitude, self.speed_mps, course)


def sky(t: float, systems: Sequence[str]) -> list[nmea.Satellite]:
    """Return the satellites in view at scenario time `t`, slowly moving across the sky."""
    sats = []
    for system in systems:
        for prn in _PRNS[system]:
            seed = zlib.crc32(f"{system}{prn}".encode())
            elevation = round(max(0.0, 8 + seed % 75 + 6 * math.sin(t / 900.0 + seed % 7)))
            azimuth = round(seed % 360 + t / 240.0) % 360
            snr = min(50, 22 + elevation // 3)
            sats.append(nmea.Satellite(system, prn, elevation, azimuth, snr, elevation >= _MIN_USED_ELEVATION))
    return sats


class GnssReceiver:
    """Sans-I/O receiver model: given scenario time and UTC time, return one epoch of sentences."""

    def __init__(
        self,
        track: LoopTrack | None = None,
        sentences: Sequence[str] = DEFAULT_SENTENCES,
        systems: Sequence[str] = ("gps", "beidou"),
        geoid_sep_m: float = -21.3,
    ) -> None:
        unknown = set(sentences) - set(SENTENCES)
        if unknown:
            raise SimulatorError(f"unknown NMEA sentences {sorted(unknown)}; known: {', '.join(SENTENCES)}")
        bad = set(systems) - set(_PRNS)
        if bad:
            raise SimulatorError(f"unknown constellations {sorted(bad)}; known: {', '.join(_PRNS)}")
        self.track = track or LoopTrack()
        self.sentences = tuple(sentences)
        self.systems = tuple(systems)
        self.geoid_sep_m = geoid_sep_m

    def epoch(self, t: float, when: datetime) -> list[bytes]:
        """Return the sentences of the epoch at scenario time `t`, stamped with UTC `when`."""
        pos = self.track.at(t)
        sats = sky(t, self.systems)
        used = [s for s in sats if s.used]
        count = len(used)
        hdop = round(0.6 + 5.0 / max(count, 1), 2)
        fix = nmea.Fix(
            time=when,
            latitude=pos.latitude,
            longitude=pos.longitude,
            altitude_m=pos.altitude_m,
            geoid_sep_m=self.geoid_sep_m,
            speed_mps=pos.speed_mps,
            course_deg=pos.course_deg,
            hdop=hdop,
            pdop=round(hdop * 1.6, 2),
            vdop=round(hdop * 1.3, 2),
            quality=1 if count >= 4 else 0,
            sats_used=count,
        )
        out: list[bytes] = []
        # Fast receivers send the satellite view once a second, not every epoch.
        whole_second = abs(t - round(t)) < 1e-6
        for kind in self.sentences:
            if kind == "RMC":
                out.append(nmea.rmc(fix))
            elif kind == "GGA":
                out.append(nmea.gga(fix))
            elif kind == "GNS":
                out.append(nmea.gns(fix, sorted({s.system for s in used})))
            elif kind == "GSA":
                for name in self.systems:
                    prns = [s.prn for s in used if s.system == name]
                    out.append(nmea.gsa(fix, nmea.SYSTEMS[name], prns))
            elif kind == "GSV" and whole_second:
                for name in self.systems:
                    out.extend(nmea.gsv(nmea.SYSTEMS[name], [s for s in sats if s.system == name]))
            elif kind == "ZDA":
                out.append(nmea.zda(when))
        return out


class GnssSimulator:
    """A receiver talking NMEA at `rate_hz` on a pty published at `link`, until the context exits.

    `async with GnssSimulator(link=tmp / "gnss0", rate_hz=5) as sim:` — open `sim.path` to read.
    """

    def __init__(
        self,
        link: Path | str,
        *,
        rate_hz: float = 1.0,
        clock: ScenarioClock | None = None,
        receiver: GnssReceiver | None = None,
        faults: Faults | None = None,
        baudrate: int | None = None,
    ) -> None:
        if not 1.0 <= rate_hz <= 10.0:
            raise SimulatorError(f"rate_hz must be 1..10, got {rate_hz}")
        self.rate_hz = rate_hz
        self.clock = clock or ScenarioClock.from_now()
        self.receiver = receiver or GnssReceiver()
        self.faults = faults or Faults()
        self.port = PtyPort(link, baudrate=baudrate)
        self.stream = FrameStream(self.port, self.faults)
        self.epochs = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def path(self) -> Path:
        """Return the stable path a reader opens."""
        return self.port.link

    async def run(self, until: float | None = None) -> None:
        """Emit epochs on the scenario clock until `until` scenario seconds (forever if None)."""
        step = 1.0 / self.rate_hz
        async for t in self.clock.ticks(step, until):
            if not self.stream.tick(t, step):
                continue
            when = self.clock.utc(t) + timedelta(seconds=self.faults.clock_offset_s())
            self.stream.send(self.receiver.epoch(t, when))
            self.epochs += 1

    async def __aenter__(self) -> Self:
        self.port.open()
        self._task = asyncio.create_task(self.run(), name=f"gnss {self.path}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        self.port.close()
