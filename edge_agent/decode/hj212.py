"""HJ 212 stream decoder: bytes from a station (TCP or serial) in, frames and samples out.

Framing resyncs on the next `##` after garbage, joins frames split across `feed()` calls and drops
frames over `max_frame_bytes`. Each frame's CRC is checked in the device's mode (`Hj212Read.crc`).

Frame to samples, keyed by pollutant code (`a34004`, `LA`, `w01018`; unknown codes too — the
normalizer decides what maps):

- real-time data (CN 2011) reads `<code>-Rtd`;
- period data (CN 2051 minute, 2061 hour, 2031 day) reads `<code>-Avg`, with `-Min`, `-Max` and the
  cumulative `-Cou` as companions keyed `<code>_min`, `<code>_max`, `<code>_cou`;
- a frame without CN reads all of those; other CNs (commands, responses, equipment state 2021,
  restart 2081 ...) yield no samples and are counted under `command`.

Each sample carries its code's data flag (`-Flag`/`-Flg`: N normal, F stopped, M maintenance, S manual,
D fault, C calibrating, T over range, B communication fault) and the frame's DataTime, read as
station-local time in `Hj212Read.timezone` and converted to UTC ms. Split packets (Flag bit 1) are
decoded packet by packet: each carries whole entries.

Counters in `stats`: `frames` (valid frames), `command`, `items` (data-area entries), `samples`,
`bad_value` (non-numeric value; the rest of the frame is kept), `bad_time`, `clock_suspect`,
`garbage_bytes`, `oversize`, and each Hj212Error reason (`framing`, `length`, `crc`, `encoding`,
`header`, `data`).
"""

from __future__ import annotations

from typing import Final
from zoneinfo import ZoneInfo

from device_profiles.schema import Hj212Read
from edge_agent.decode.base import DecodeStats, Sample
from edge_agent.decode.hj212_crc import CRC_MODES, CrcMode, crc16_modbus, crc_hj212
from edge_agent.decode.hj212_frame import (
    Frame,
    Hj212CrcError,
    Hj212DataError,
    Hj212EncodingError,
    Hj212Error,
    Hj212FramingError,
    Hj212HeaderError,
    Hj212LengthError,
    Hj212TimeError,
    Item,
    build_ack,
    datatime_to_utc_ms,
    encode_frame,
    format_segment,
    needs_ack,
    parse_frame,
)

__all__ = [
    "CRC_MODES",
    "CrcMode",
    "Frame",
    "Hj212CrcError",
    "Hj212DataError",
    "Hj212Decoder",
    "Hj212EncodingError",
    "Hj212Error",
    "Hj212FramingError",
    "Hj212HeaderError",
    "Hj212LengthError",
    "Hj212TimeError",
    "Item",
    "build_ack",
    "crc16_modbus",
    "crc_hj212",
    "datatime_to_utc_ms",
    "encode_frame",
    "format_segment",
    "frame_samples",
    "needs_ack",
    "parse_frame",
]

_PERIOD: Final = {"Avg": "", "Min": "_min", "Max": "_max", "Cou": "_cou"}
# CN -> {value suffix: sample key suffix}; CNs not listed carry no measurements.
_VALUE_SUFFIXES: Final[dict[str | None, dict[str, str]]] = {
    "2011": {"Rtd": ""},
    "2051": _PERIOD,
    "2061": _PERIOD,
    "2031": _PERIOD,
    None: {"Rtd": "", **_PERIOD},
}

# A DataTime outside [now - 1 year, now + 1 day] is a station clock problem, not a late upload.
FUTURE_MS: Final = 86_400_000
PAST_MS: Final = 366 * 86_400_000


def frame_samples(frame: Frame, ts_ms: int | None, clock_suspect: bool, stats: DecodeStats) -> list[Sample]:
    """Return the samples of a parsed frame stamped `ts_ms`, counting items and bad values."""
    items = frame.items
    stats.add("items", len(items))
    suffixes = _VALUE_SUFFIXES.get(frame.cn)
    if suffixes is None:
        stats.add("command")
        return []
    out: list[Sample] = []
    bad = 0
    pick = suffixes.get
    for code, suffix, text, flag in items:
        if suffix is None or (key_suffix := pick(suffix)) is None:
            continue
        # Inline rather than a helper: this loop is the decoder's hot path.
        try:
            value = float(text)
        except ValueError:
            bad += 1
            continue
        # float() also takes `nan`, `inf` and `1_0`; none of them is a measurement.
        if value - value != 0.0 or "_" in text:
            bad += 1
            continue
        out.append(Sample(code + key_suffix, value, ts_ms, flag, False, clock_suspect))
    if bad:
        stats.add("bad_value", bad)
    stats.add("samples", len(out))
    return out


class Hj212Decoder:
    """Stream decoder for one HJ 212 station link; implements the Decoder protocol."""

    def __init__(self, settings: Hj212Read | None = None) -> None:
        self.settings = settings if settings is not None else Hj212Read()
        self.stats = DecodeStats()
        self._crc: CrcMode = self.settings.crc
        self._tz = ZoneInfo(self.settings.timezone)
        self._max = self.settings.max_frame_bytes
        self._buf = bytearray()
        # Frames of one upload share a DataTime; remember the last conversion.
        self._last_time: tuple[str, int] = ("", 0)

    def feed(self, data: bytes, now_ms: int) -> list[Sample]:
        """Consume `data`, return the samples of every frame it completes."""
        out: list[Sample] = []
        for frame in self.feed_frames(data):
            out += self.samples(frame, now_ms)
        return out

    def samples(self, frame: Frame, now_ms: int) -> list[Sample]:
        """Return the samples of one parsed frame; `now_ms` bounds the DataTime sanity window."""
        ts_ms: int | None = None
        suspect = False
        text = frame.datatime
        if text is not None:
            if text == self._last_time[0]:
                ts_ms = self._last_time[1]
            else:
                try:
                    ts_ms = datatime_to_utc_ms(text, self._tz)
                except Hj212TimeError:
                    # Event time unknown: the runner stamps arrival, and the reading is flagged.
                    self.stats.add("bad_time")
                    suspect = True
                else:
                    self._last_time = (text, ts_ms)
            if ts_ms is not None and not (now_ms - PAST_MS <= ts_ms <= now_ms + FUTURE_MS):
                suspect = True
            if suspect:
                self.stats.add("clock_suspect")
        return frame_samples(frame, ts_ms, suspect, self.stats)

    def feed_frames(self, data: bytes) -> list[Frame]:
        """Consume `data`, return every valid frame it completes (for runners that must acknowledge)."""
        buf = self._buf
        buf += data
        n = len(buf)
        frames: list[Frame] = []
        add = self.stats.add
        pos = 0
        while True:
            start = buf.find(b"##", pos)
            if start < 0:
                # Keep a trailing '#': it may be the first half of the next marker.
                keep = 1 if n > pos and buf[n - 1] == 0x23 else 0
                if n - keep > pos:
                    add("garbage_bytes", n - keep - pos)
                pos = n - keep
                break
            if start > pos:
                add("garbage_bytes", start - pos)
            pos = start
            if n - start < 6:
                break
            digits = buf[start + 2 : start + 6]
            if not digits.isdigit():
                add("framing")
                # Step one byte only: `###0101` holds a real marker one byte on.
                pos = start + 1
                continue
            end = start + int(digits) + 12
            if end - start > self._max:
                add("oversize")
                pos = start + 1
                continue
            # No CR LF may come before the frame's own terminator: if one does, the length is wrong
            # (or the frame was cut short); give up on it now instead of swallowing the next frames.
            if buf.find(b"\r\n", start, min(end - 1, n)) >= 0:
                add("length")
                pos = start + 1
                continue
            if end > n:
                break
            if buf[end - 2 : end] != b"\r\n":
                add("length")
                pos = start + 1
                continue
            try:
                frame = parse_frame(bytes(buf[start:end]), self._crc)
            except Hj212Error as exc:
                add(exc.reason)
                # A `##dddd` in line noise can span a real frame up to its CR LF: look inside for it.
                inner = buf.find(b"##", start + 2, end)
                pos = end if inner < 0 else inner
                continue
            add("frames")
            frames.append(frame)
            pos = end
        del buf[:pos]
        return frames
