"""Benchmark: the gpsd NMEA corpus through NmeaDecoder.feed vs raw pynmea2.parse; prints rates and ratio.

Run: .venv/bin/python bench/bench_gnss.py [--rounds N]

Both paths see the same lines (gpsd `#` header lines removed) in the same process. Ours is fed one line
per call (the worst case) and, separately, 4 KiB chunks (a serial port read); the baseline parses one
line per call. Rounds alternate, and each path keeps its best round in CPU time of this process, so load
from other processes does not count. The baseline is lazy (pynmea2 converts no field until asked), ours
checks framing and checksums, types every field, assembles epochs and builds samples; the target is a
cost of at most 2x the baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pynmea2

from edge_agent.decode.nmea import NmeaDecoder

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "gnss"
NOW_MS = 1_700_000_000_000


def load_logs() -> list[list[bytes]]:
    """Return each corpus log as its list of lines (with line endings), headers removed."""
    return [
        [line for line in log.read_bytes().splitlines(keepends=True) if not line.startswith(b"#")]
        for log in sorted(CORPUS.glob("*.log"))
    ]


def run_ours(logs: list[list[bytes]]) -> tuple[float, int]:
    """Feed every line through a fresh decoder per log; return (seconds, samples)."""
    samples = 0
    start = time.process_time()
    for lines in logs:
        decoder = NmeaDecoder()
        for line in lines:
            samples += len(decoder.feed(line, NOW_MS))
        samples += len(decoder.flush(NOW_MS))
    return time.process_time() - start, samples


def run_ours_chunked(logs: list[list[bytes]], size: int = 4096) -> tuple[float, int]:
    """Feed each log in `size`-byte chunks through a fresh decoder; return (seconds, samples)."""
    blobs = [b"".join(lines) for lines in logs]
    samples = 0
    start = time.process_time()
    for blob in blobs:
        decoder = NmeaDecoder()
        for i in range(0, len(blob), size):
            samples += len(decoder.feed(blob[i : i + size], NOW_MS))
        samples += len(decoder.flush(NOW_MS))
    return time.process_time() - start, samples


def run_pynmea2(texts: list[str]) -> tuple[float, int]:
    """Parse every line with pynmea2.parse; return (seconds, sentences parsed)."""
    parsed = 0
    start = time.process_time()
    for text in texts:
        try:
            pynmea2.parse(text)
        except pynmea2.ParseError:
            continue
        parsed += 1
    return time.process_time() - start, parsed


def main() -> None:
    """Run both paths `--rounds` times and print the best rates and the cost ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logs = load_logs()
    texts = [line.decode("latin-1") for lines in logs for line in lines]
    # Interleaved rounds, so that load from other processes hits both paths alike.
    rounds = [(run_ours(logs), run_ours_chunked(logs), run_pynmea2(texts)) for _ in range(args.rounds)]
    ours = min(r[0] for r in rounds)
    chunked = min(r[1] for r in rounds)
    base = min(r[2] for r in rounds)
    n = len(texts)
    print(f"corpus: {len(logs)} logs, {n} lines, best of {args.rounds} rounds")
    print(
        f"feed, line a call: {ours[0] * 1e3:8.1f} ms  {n / ours[0]:10.0f} lines/s  "
        f"{ours[1] / ours[0]:10.0f} samples/s ({ours[1]} samples)"
    )
    print(
        f"feed, 4 KiB reads: {chunked[0] * 1e3:8.1f} ms  {n / chunked[0]:10.0f} lines/s  "
        f"{chunked[1] / chunked[0]:10.0f} samples/s"
    )
    print(
        f"pynmea2.parse    :  {base[0] * 1e3:8.1f} ms  {n / base[0]:10.0f} lines/s  "
        f"{base[1] / base[0]:10.0f} sentences/s ({base[1]} parsed)"
    )
    print(f"cost ratio, line per feed (ours / pynmea2.parse): {ours[0] / base[0]:.2f}x  (target <= 2.00x)")
    print(f"cost ratio, 4 KiB reads   (ours / pynmea2.parse): {chunked[0] / base[0]:.2f}x")


if __name__ == "__main__":
    main()
