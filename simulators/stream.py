"""A device's frame stream: frames in, through faults and outages (unplug, silence), bytes out to a sink."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from simulators.faults import Faults, Outage


class Sink(Protocol):
    """Where a device's bytes go: a pty port or a TCP link. Never blocks; drops and counts instead."""

    def write(self, data: bytes) -> int:
        """Send what can be sent now; return the bytes taken."""
        ...

    def unplug(self) -> None:
        """Cut the line."""
        ...

    def replug(self) -> None:
        """Restore the line."""
        ...


@dataclass(slots=True)
class StreamStats:
    """Frames made by the device, and those lost to outages before they reached the sink."""

    frames: int = 0
    bytes: int = 0
    lost_in_outage: int = 0


class FrameStream:
    """Sends frames to a sink through frame faults, starting and ending outages on the scenario clock."""

    def __init__(self, sink: Sink, faults: Faults, *, binary: bool = False) -> None:
        self.sink = sink
        self.faults = faults
        self.binary = binary
        self.stats = StreamStats()
        self._outage: Outage | None = None
        self._outage_until = 0.0

    @property
    def outage(self) -> Outage | None:
        """Return the outage in progress, if any."""
        return self._outage

    def tick(self, t: float, step: float) -> bool:
        """Advance outages to scenario time `t`; return True when the device can be heard now."""
        if self._outage is not None and t >= self._outage_until:
            if self._outage == "unplug":
                self.sink.replug()
            self._outage = None
        if self._outage is None:
            started = self.faults.outage(step)
            if started is not None:
                self._outage = started
                spec = self.faults.spec
                self._outage_until = t + (spec.unplug_for if started == "unplug" else spec.silence_for)
                if started == "unplug":
                    self.sink.unplug()
        return self._outage is None

    def send(self, frames: Iterable[bytes]) -> None:
        """Write frames (CRLF-terminated text, or binary RTU frames) through the frame faults."""
        for frame in frames:
            self.stats.frames += 1
            if self._outage is not None:
                self.stats.lost_in_outage += 1
                continue
            data = self.faults.frame(frame, binary=self.binary)
            self.stats.bytes += len(data)
            if data:
                self.sink.write(data)
