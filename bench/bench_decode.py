"""Benchmark: real inputs through decoder.feed + Normalizer.normalize; readings/s per core beside baselines.

Run: `.venv/bin/python bench/bench_decode.py [--rounds N] [--only gnss|hj212|json]`; prints a markdown
table for bench/RESULTS.md.

Paths, each measured beside its baseline in the same process on the same bytes:

* GNSS: every gpsd corpus log (`#` header lines removed), one fresh NmeaDecoder per log, fed in 4 KiB
  reads (a serial port read) and, separately, one line per feed (the worst case); then normalized with
  the bundled `gnss-nmea` profile. Baseline: `pynmea2.parse` over the same lines (lazy: it converts no
  field until asked). Target: the 4 KiB path costs at most 2x the baseline.
* HJ 212, station: the stream Hj212Simulator sends with a 1 s real-time interval (a CN 2011 frame of the
  nine default codes every second, a CN 2051 minute frame with Avg/Min/Max each minute), built by the
  simulator's own Hj212Station, standard CRC, 4 KiB reads, bundled `hj212` profile. This is the row the
  target applies to: every code of these frames is a profile measure. Baseline: find each frame and
  split its data area on `;`, `,`, `=` without checking anything.
* HJ 212, corpus: the standard-CRC frames of corpus/hj212/frames.tsv, repeated; most of their codes are
  not in the profile (counted `unmapped`), so few readings come out: it shows the cost of real-world
  variety per frame, not a readings rate.
* JSON: manhole-tilt-mqtt messages as the MQTT sensor simulator publishes them (one payload per feed),
  bundled `manhole-tilt-mqtt` profile. Baseline: `orjson.loads` of every payload.

Timing: CPU time of this process (`time.process_time`), so time given to other processes on a shared
machine does not count. Each path is cut into steps (a GNSS log, or a slice of a stream fed to the same
decoder in order); a step of ours and the same step of the baseline run back to back, so both see the
same machine. A path's time is the sum over its steps of each step's best of N rounds. Decoders and
normalizers are built before the clock starts, as a gateway builds them once per device.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import orjson
import pynmea2

from device_profiles import BUNDLED_DIR, Profile, load_profile
from edge_agent.decode.base import Decoder
from edge_agent.decode.factory import make_decoder
from edge_agent.normalize import Normalizer
from simulators.clock import ScenarioClock
from simulators.hj212 import Hj212Station
from simulators.mqtt_sensors import MqttSensor, MqttSensorsSimulator

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
READ = 4096  # one serial or TCP read
NOW_MS = 1_700_000_000_000  # start of the simulated streams (2023-11-14), and the fallback arrival time
STATION_SECONDS = 1800  # half an hour of an HJ 212 station at a 1 s real-time interval
CORPUS_REPEAT = 50  # copies of the 32 standard HJ 212 corpus frames
JSON_MESSAGES = 5000
STEPS = 20  # steps a single stream is cut into
TARGET_RATE = 50_000.0
TARGET_RATIO = 2.0

Step = Callable[[], int]  # one timed piece of work; returns readings out (ours) or items handled (baseline)


@dataclass(slots=True)
class Case:
    """One decode + normalize path beside its baseline, with the best time of each step."""

    name: str
    what: str
    ours: Callable[[], list[Step]]  # fresh steps for one round, run in order
    baseline_name: str
    baseline: Callable[[], list[Step]]  # as many steps, each the baseline's share of the same input
    baseline_unit: str
    target: str  # "rate", "ratio" or "" (informational)
    best: list[float] = field(default_factory=list)
    best_baseline: list[float] = field(default_factory=list)
    readings: int = 0
    items: int = 0

    @property
    def seconds(self) -> float:
        """Return the path's CPU seconds: the sum of its steps' best times."""
        return sum(self.best)

    @property
    def baseline_seconds(self) -> float:
        """Return the baseline's CPU seconds: the sum of its steps' best times."""
        return sum(self.best_baseline)

    def round(self) -> None:
        """Run every step of ours and of the baseline, alternating, and keep each step's best time."""
        pairs = list(zip(self.ours(), self.baseline(), strict=True))
        if not self.best:
            self.best = [float("inf")] * len(pairs)
            self.best_baseline = [float("inf")] * len(pairs)
        readings = items = 0
        clock = time.process_time
        for i, (ours, baseline) in enumerate(pairs):
            start = clock()
            readings += ours()
            middle = clock()
            items += baseline()
            end = clock()
            self.best[i] = min(self.best[i], middle - start)
            self.best_baseline[i] = min(self.best_baseline[i], end - middle)
        self.readings, self.items = readings, items


def bundled(name: str) -> Profile:
    """Load a bundled device profile by name."""
    return load_profile(BUNDLED_DIR / f"{name}.yaml")


def cut(blob: bytes, size: int = READ) -> list[bytes]:
    """Cut `blob` into `size`-byte reads."""
    return [blob[i : i + size] for i in range(0, len(blob), size)]


def slices(items: list[bytes], n: int = STEPS) -> list[list[bytes]]:
    """Cut `items` into `n` consecutive slices of nearly equal length."""
    size = -(-len(items) // n)
    return [items[i : i + size] for i in range(0, len(items), size)]


def arrival_time(profile: Profile, reads: list[bytes]) -> int:
    """Return the median event time a stream's samples carry (else NOW_MS): a gateway clock in step with it.

    Replayed captures are years old; fed with today's clock, every reading would be `clock_suspect`,
    which a live gateway (whose clock agrees with its receiver) does not see.
    """
    decoder = make_decoder(profile)
    stamps = sorted(s.ts_ms for read in reads for s in decoder.feed(read, NOW_MS) if s.ts_ms is not None)
    return stamps[len(stamps) // 2] if stamps else NOW_MS


def feed(decoder: Decoder, normalizer: Normalizer, reads: list[bytes], now_ms: int, last: bool) -> int:
    """Feed `reads` to the decoder and normalize what each feed returns (then flush if `last`)."""
    normalize, decode = normalizer.normalize, decoder.feed
    out = 0
    for read in reads:
        out += len(normalize(decode(read, now_ms), now_ms))
    flush = getattr(decoder, "flush", None)  # NmeaDecoder holds the last epoch until told the stream ended
    if last and flush is not None:
        out += len(normalize(flush(now_ms), now_ms))
    return out


def through(profile: Profile, streams: list[list[list[bytes]]]) -> Callable[[], list[Step]]:
    """Return the steps of one round: each stream (a list of slices of reads) through a fresh decoder."""
    normalizer = Normalizer("dev", profile.measures)
    clocks = [arrival_time(profile, [read for part in parts for read in part]) for parts in streams]

    def steps() -> list[Step]:
        out: list[Step] = []
        for parts, now_ms in zip(streams, clocks, strict=True):
            decoder = make_decoder(profile)
            out += [
                partial(feed, decoder, normalizer, part, now_ms, i == len(parts) - 1) for i, part in enumerate(parts)
            ]
        return out

    return steps


def parse_lines(texts: list[str]) -> int:
    """Parse every line with pynmea2.parse; return how many parsed."""
    parse, error = pynmea2.parse, pynmea2.ParseError
    parsed = 0
    for text in texts:
        try:
            parse(text)
        except error:
            continue
        parsed += 1
    return parsed


def gnss_paths() -> list[Case]:
    """The gpsd corpus in 4 KiB reads and line by line, beside pynmea2.parse over the same lines."""
    logs = [
        [line for line in log.read_bytes().splitlines(keepends=True) if not line.startswith(b"#")]
        for log in sorted((CORPUS / "gnss").glob("*.log"))
    ]
    texts = [[line.decode("latin-1") for line in lines] for lines in logs]
    profile = bundled("gnss-nmea")

    def baseline() -> list[Step]:
        return [partial(parse_lines, lines) for lines in texts]

    what = f"{len(logs)} gpsd logs, {sum(map(len, logs))} lines"
    return [
        Case(
            "GNSS NMEA, 4 KiB reads",
            what,
            through(profile, [[cut(b"".join(lines))] for lines in logs]),
            "pynmea2.parse loop",
            baseline,
            "lines",
            "ratio",
        ),
        Case(
            "GNSS NMEA, a line per feed",
            what,
            through(profile, [[lines] for lines in logs]),
            "pynmea2.parse loop",
            baseline,
            "lines",
            "",
        ),
    ]


class FrameSplitter:
    """The HJ 212 baseline: find each `##...\\r\\n` frame and split its data area, checking nothing."""

    def __init__(self) -> None:
        self._buf = b""

    def split(self, reads: list[bytes]) -> int:
        """Consume `reads`; return the number of frames completed."""
        buf = self._buf
        frames = 0
        for read in reads:
            buf += read
            pos = 0
            while (end := buf.find(b"\r\n", pos)) >= 0:
                frame = buf[pos:end]
                pos = end + 2
                frames += 1
                for group in frame[frame.find(b"CP=&&") + 5 : -6].split(b";"):
                    for entry in group.split(b","):
                        entry.split(b"=", 1)
            buf = buf[pos:]
        self._buf = buf
        return frames


def station_stream() -> tuple[bytes, int]:
    """Return the bytes and frame count of a station sending CN 2011 each second, CN 2051 each minute."""
    clock = ScenarioClock(start_ms=NOW_MS)
    station = Hj212Station()
    frames: list[bytes] = []
    for t in range(STATION_SECONDS + 1):
        now_ms = clock.ms(t)
        # As Hj212Simulator.run: the sample taken on the minute belongs to the new minute.
        if t > 0 and now_ms % 60_000 == 0:
            minute = station.minute(now_ms)
            if minute is not None:
                frames.append(minute)
        station.sample(t)
        frames.append(station.realtime(now_ms))
    return b"".join(frames), len(frames)


def split_steps(parts: list[list[bytes]]) -> Callable[[], list[Step]]:
    """Return the baseline steps of one round over a stream cut into `parts`."""

    def steps() -> list[Step]:
        splitter = FrameSplitter()
        return [partial(splitter.split, part) for part in parts]

    return steps


def hj212_paths() -> list[Case]:
    """HJ 212 station frames and corpus frames in 4 KiB reads, beside a raw frame split."""
    profile = bundled("hj212")
    stream, frames = station_stream()
    station = slices(cut(stream))
    lines = (CORPUS / "hj212" / "frames.tsv").read_text(encoding="utf-8").splitlines()
    corpus = slices(cut(b"".join(line.split("\t")[0].encode() + b"\r\n" for line in lines) * CORPUS_REPEAT))
    return [
        Case(
            "HJ 212, station CN 2011/2051",
            f"{frames} simulator frames, {len(stream) // 1024} KiB",
            through(profile, [station]),
            "frame + data-area split",
            split_steps(station),
            "frames",
            "rate",
        ),
        Case(
            "HJ 212, corpus frames.tsv",
            f"{len(lines)} real frames x {CORPUS_REPEAT}",
            through(profile, [corpus]),
            "frame + data-area split",
            split_steps(corpus),
            "frames",
            "",
        ),
    ]


def load_all(payloads: list[bytes]) -> int:
    """Parse every payload with orjson.loads; return how many."""
    loads = orjson.loads
    for payload in payloads:
        loads(payload)
    return len(payloads)


def json_paths() -> list[Case]:
    """Manhole-cover MQTT payloads as the simulator publishes them, beside orjson.loads."""
    profile = bundled("manhole-tilt-mqtt")
    sensor = MqttSensor("MH-0001", profile)
    simulator = MqttSensorsSimulator("127.0.0.1", 0, [sensor], clock=ScenarioClock(start_ms=NOW_MS))
    payloads = [payload for t in range(JSON_MESSAGES) for _, payload in simulator.messages(float(t))]
    parts = slices(payloads)
    return [
        Case(
            "JSON, manhole-tilt-mqtt",
            f"{len(payloads)} MQTT payloads, one per feed",
            through(profile, [parts]),
            "orjson.loads loop",
            lambda: [partial(load_all, part) for part in parts],
            "messages",
            "rate",
        ),
    ]


def machine() -> str:
    """Return the machine facts line: cores, CPU model, Python."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc), {model}, Python {platform.python_version()} ({platform.machine()})"


def verdict(case: Case) -> str:
    """Return the target and whether it is met."""
    if case.target == "rate":
        rate = case.readings / case.seconds
        return f">= {TARGET_RATE / 1000:.0f}k/s: {'met' if rate >= TARGET_RATE else 'NOT met'}"
    if case.target == "ratio":
        ratio = case.seconds / case.baseline_seconds
        return f"<= {TARGET_RATIO:.0f}x: {'met' if ratio <= TARGET_RATIO else 'NOT met'}"
    return "(info)"


def table(cases: list[Case], rounds: int) -> str:
    """Return the results as a markdown table with the machine facts above it."""
    rows = [
        f"Machine: {machine()}. CPU time per step, best of {rounds} rounds, ours and baseline interleaved.",
        "",
        "| path | input | readings out | CPU ms | readings/s | µs/reading | baseline | baseline CPU ms "
        "| baseline rate | cost ratio | target |",
        "|---|---|--:|--:|--:|--:|---|--:|--:|--:|---|",
    ]
    for c in cases:
        rows.append(
            f"| {c.name} | {c.what} | {c.readings:,} | {c.seconds * 1e3:.1f} | {c.readings / c.seconds:,.0f} "
            f"| {c.seconds * 1e6 / max(c.readings, 1):.2f} | {c.baseline_name} | {c.baseline_seconds * 1e3:.1f} "
            f"| {c.items / c.baseline_seconds:,.0f} {c.baseline_unit}/s | {c.seconds / c.baseline_seconds:.2f}x "
            f"| {verdict(c)} |"
        )
    return "\n".join(rows)


def main() -> None:
    """Build every input, run all paths in interleaved rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="rounds; each step keeps its best time")
    parser.add_argument("--only", choices=("gnss", "hj212", "json"), help="run one kind of input only")
    args = parser.parse_args()
    builders = {"gnss": gnss_paths, "hj212": hj212_paths, "json": json_paths}
    cases = [case for kind, build in builders.items() if args.only in (None, kind) for case in build()]
    for _ in range(args.rounds):
        for case in cases:
            gc.collect()  # garbage of the previous case is not billed to this one
            case.round()
    print(table(cases, args.rounds))


if __name__ == "__main__":
    main()
