"""An HJ 212-2017 air station: scenario values in, CN 2011 / CN 2051 frames out over a pty or TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from zoneinfo import ZoneInfo

from device_profiles import BUNDLED_DIR, Measure, Profile, load_profile
from gateway.aio import cancel_and_wait
from simulators import hj212_encode as enc
from simulators.clock import ScenarioClock
from simulators.errors import SimulatorError
from simulators.faults import Faults
from simulators.hj212_encode import CrcMode
from simulators.pty import PtyPort
from simulators.scenario import Scenario, scenario
from simulators.stream import FrameStream
from simulators.tcp import TcpLink
from simulators.values import check_scenario, device_values

DEFAULT_CODES: Final = ("a34004", "a34002", "a21026", "a21004", "a05024", "a21005", "LA", "a01001", "a01002")
# Decimal places stations print per code; the rest get 1.
_DECIMALS: Final = {"a21005": 3, "a01002": 1, "LA": 1}
_MAX_LINE: Final = 10240


@dataclass(slots=True)
class _MinuteStats:
    """Per-code samples of the current minute."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, code: str, value: float) -> None:
        self.values.setdefault(code, []).append(value)


class Hj212Station:
    """Sans-I/O station model: scenario time in, HJ 212 frames out; one sample a second per code.

    Which codes it reports, and what each measures, come from the HJ 212 device profile.
    """

    def __init__(
        self,
        *,
        mn: str = "GW0101A0000001",
        pw: str = "123456",
        st: str = "22",
        codes: Sequence[str] = DEFAULT_CODES,
        profile: Profile | None = None,
        values: Scenario | None = None,
        crc_mode: CrcMode = "hj212",
        ack: bool = False,
        timezone: str = "Asia/Shanghai",
        faults: Faults | None = None,
    ) -> None:
        self.profile = profile or load_profile(BUNDLED_DIR / "hj212.yaml")
        self.measures: dict[str, Measure] = {}
        for code in codes:
            measure = next((m for m in self.profile.measures if m.source == code), None)
            if measure is None:
                raise SimulatorError(f"code {code!r} is not a source of profile {self.profile.name!r}")
            self.measures[code] = measure
        self.values = values or scenario("normal")
        check_scenario(self.profile, self.measures.values(), self.values)
        self.mn, self.pw, self.st = mn, pw, st
        self.crc_mode: CrcMode = crc_mode
        self.flag = enc.FLAG_2017 | (enc.FLAG_ACK if ack else 0)
        self.tz = ZoneInfo(timezone)
        self.faults = faults or Faults()
        self.sent_qns: list[str] = []
        self._minute = _MinuteStats()
        self._current: dict[str, float] = {}

    def sample(self, t: float) -> None:
        """Take the once-a-second sample of every code at scenario time `t`."""
        for code, value in device_values(self.measures, self.values, t, self.faults).items():
            self._current[code] = value
            self._minute.add(code, value)

    def _frame(self, cn: str, stamp_ms: int, data_time_ms: int, cp_items: list[tuple[str, dict[str, str]]]) -> bytes:
        skew = timedelta(seconds=self.faults.clock_offset_s())
        now = _local(stamp_ms, self.tz) + skew
        qn = enc.qn(now)
        self.sent_qns = [*self.sent_qns[-63:], qn]
        cp = enc.data_area(enc.datatime(_local(data_time_ms, self.tz) + skew), cp_items)
        seg = enc.segment(qn=qn, st=self.st, cn=cn, pw=self.pw, mn=self.mn, flag=self.flag, cp=cp)
        return enc.frame(seg, self.crc_mode)

    def realtime(self, now_ms: int) -> bytes:
        """Return a CN 2011 real-time frame of the latest samples (`-Rtd`, `-Flag`)."""
        items = [
            (code, {"Rtd": enc.number(value, _DECIMALS.get(code, 1)), "Flag": "N"})
            for code, value in self._current.items()
        ]
        return self._frame("2011", now_ms, now_ms, items)

    def minute(self, now_ms: int) -> bytes | None:
        """Close the minute ending at `now_ms`: a CN 2051 frame (`-Avg/-Min/-Max/-Flag`), or None if empty."""
        stats, self._minute = self._minute, _MinuteStats()
        if not stats.values:
            return None
        items = []
        for code, samples in stats.values.items():
            places = _DECIMALS.get(code, 1)
            items.append(
                (
                    code,
                    {
                        "Avg": enc.number(sum(samples) / len(samples), places),
                        "Min": enc.number(min(samples), places),
                        "Max": enc.number(max(samples), places),
                        "Flag": "N",
                    },
                )
            )
        # Minute data is stamped with the start of the minute it covers.
        return self._frame("2051", now_ms, now_ms - 60_000, items)


def _local(ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=tz)


@dataclass(slots=True)
class ReplyStats:
    """Replies the station got from the platform."""

    acks: int = 0  # CN 9014 answering a QN this station sent
    acks_unmatched: int = 0
    other: int = 0
    bad: int = 0


class Hj212Simulator:
    """A station sending CN 2011 every `rtd_interval` s and CN 2051 each minute, until the context exits.

    Over a pty: `async with Hj212Simulator(link=tmp / "hj0", rtd_interval=1) as sim:` (read `sim.path`);
    dialling out: `async with Hj212Simulator(host="127.0.0.1", port=PORT) as sim:`.
    """

    def __init__(
        self,
        *,
        link: Path | str | None = None,
        host: str | None = None,
        port: int | None = None,
        rtd_interval: float = 30.0,
        clock: ScenarioClock | None = None,
        station: Hj212Station | None = None,
        faults: Faults | None = None,
    ) -> None:
        if (link is None) == (host is None or port is None):
            raise SimulatorError("give either link (a pty) or host and port (a TCP platform)")
        if rtd_interval < 1 or rtd_interval != int(rtd_interval):
            raise SimulatorError(f"rtd_interval must be a whole number of seconds >= 1, got {rtd_interval}")
        self.rtd_interval = int(rtd_interval)
        self.clock = clock or ScenarioClock.from_now()
        self.faults = faults or (station.faults if station is not None else Faults())
        self.station = station or Hj212Station(faults=self.faults)
        self.pty: PtyPort | None = None
        self.tcp: TcpLink | None = None
        self.sink: PtyPort | TcpLink
        if link is not None:
            self.sink = self.pty = PtyPort(link)
        elif host is not None and port is not None:
            self.sink = self.tcp = TcpLink(host, port)
        self.stream = FrameStream(self.sink, self.faults)
        self.replies = ReplyStats()
        self.realtime_frames = 0
        self.minute_frames = 0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def path(self) -> Path:
        """Return the stable pty path a reader opens."""
        if self.pty is None:
            raise SimulatorError("this station dials a TCP platform; it has no pty path")
        return self.pty.link

    async def run(self, until: float | None = None) -> None:
        """Sample every second, send real-time and minute frames on the scenario clock."""
        async for t in self.clock.ticks(1.0, until):
            now_ms = self.clock.ms(t)
            speaking = self.stream.tick(t, 1.0)
            frames = []
            # The sample taken on the minute belongs to the new minute, so close the old one first.
            if t > 0 and now_ms % 60_000 == 0:
                minute = self.station.minute(now_ms)
                if minute is not None:
                    frames.append(minute)
                    self.minute_frames += speaking
            self.station.sample(t)
            if round(t) % self.rtd_interval == 0:
                frames.append(self.station.realtime(now_ms))
                self.realtime_frames += speaking
            self.stream.send(frames)

    async def _read_replies(self) -> None:
        """Count the platform's replies; a CN 9014 is an ack, but the station never waits for one."""
        buffer = b""
        while True:
            data = await self.sink.read()
            if not data:
                buffer = b""
                continue
            *lines, buffer = (buffer + data).split(b"\r\n")
            buffer = buffer[-_MAX_LINE:]
            for line in lines:
                self._on_reply(line.strip(b"\x00\r\n "))

    def _on_reply(self, line: bytes) -> None:
        if not line:
            return
        if not enc.reply_valid(line, self.station.crc_mode):
            self.replies.bad += 1
            return
        fields = enc.reply_fields(line)
        if fields.get("CN") != "9014":
            self.replies.other += 1
        elif fields.get("QN") in self.station.sent_qns:
            self.replies.acks += 1
        else:
            self.replies.acks_unmatched += 1

    async def __aenter__(self) -> Self:
        if self.pty is not None:
            self.pty.open()
        if self.tcp is not None:
            await self.tcp.__aenter__()
        self._tasks = [
            asyncio.create_task(self.run(), name="hj212 station"),
            asyncio.create_task(self._read_replies(), name="hj212 replies"),
        ]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._tasks)
        if self.tcp is not None:
            await self.tcp.__aexit__(exc_type, exc, tb)
        if self.pty is not None:
            self.pty.close()
