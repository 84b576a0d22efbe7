"""Benchmark: realistic MQTT JSON payloads in, samples/s through JsonDecoder out, beside bare orjson.loads.

Run: `.venv/bin/python bench/bench_json.py [seconds]`. Both loops run in the same process on the same
payloads (manhole-cover and temperature/humidity messages as the bundled profiles read them, one MQTT
payload per feed). The baseline only parses; the decoder also walks paths, checks numbers, parses the
event time and builds Samples. Target: at least 50k readings/s per core.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import orjson

from device_profiles import BUNDLED_DIR, load_profile
from edge_agent.decode.jsonpath import JsonDecoder

T0 = 1_718_000_000_000


def manhole_payloads(n: int) -> list[bytes]:
    """Return `n` manhole-cover messages, as the devices send them."""
    return [
        orjson.dumps(
            {
                "devId": f"MH-{i % 500:04d}",
                "ts": T0 + i * 1000,
                "data": {
                    "tilt": (i % 200) / 10,
                    "battery": 100 - i % 100,
                    "temp": 20 + (i % 50) / 10,
                    "rssi": -71,
                },
            }
        )
        for i in range(n)
    ]


def th_payloads(n: int) -> list[bytes]:
    """Return `n` temperature/humidity messages with RFC 3339 times."""
    return [
        orjson.dumps(
            {
                "sn": f"TH-{i % 500:04d}",
                "time": f"2024-06-10T14:{i % 60:02d}:{(i * 7) % 60:02d}+08:00",
                "temperature": 15 + (i % 300) / 10,
                "humidity": 30 + (i % 600) / 10,
            }
        )
        for i in range(n)
    ]


def rate(step: Callable[[], int], seconds: float) -> float:
    """Call `step` (returns items done) until `seconds` pass; return items per second."""
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += step()
    return done / elapsed


def bench(profile_name: str, payloads: list[bytes], seconds: float) -> None:
    """Print samples/s through the profile's decoder and messages/s through a bare orjson loop."""
    settings = load_profile(BUNDLED_DIR / f"{profile_name}.yaml").read.json_
    assert settings is not None
    decoder = JsonDecoder(settings)
    loads = orjson.loads

    def decode() -> int:
        feed = decoder.feed
        return sum(len(feed(p, 0)) for p in payloads)

    def raw() -> int:
        for p in payloads:
            loads(p)
        return len(payloads)

    per_message = decode() / len(payloads)
    samples_s = rate(decode, seconds)
    raw_msgs_s = rate(raw, seconds)
    decoder_msgs_s = samples_s / per_message
    print(f"{profile_name}: {per_message:.0f} samples/message")
    print(f"  JsonDecoder    {samples_s:>12,.0f} samples/s  {decoder_msgs_s:>12,.0f} messages/s")
    print(f"  orjson.loads   {'':>12}             {raw_msgs_s:>12,.0f} messages/s")
    print(f"  ratio          decoder is {raw_msgs_s / decoder_msgs_s:.1f}x slower than bare parsing per message")


def main() -> None:
    """Run both message kinds for the given seconds each (default 1)."""
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    bench("manhole-tilt-mqtt", manhole_payloads(2000), seconds)
    bench("temp-humidity-mqtt", th_payloads(2000), seconds)


if __name__ == "__main__":
    main()
