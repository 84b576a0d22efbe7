"""Replay a capture file through a profile's decoder and normalizer: file in, readings and a tally out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from device_profiles.schema import Profile
from edge_agent.decode.factory import make_decoder
from edge_agent.normalize import Normalizer
from gateway.readings import Reading


@dataclass(slots=True)
class ReplayTally:
    """What a replay saw: decoder and normalizer outcomes, and readings by quality."""

    outcomes: Counter[str] = field(default_factory=Counter)
    qualities: Counter[str] = field(default_factory=Counter)


def capture_chunks(data: bytes, decoder_kind: str) -> Iterator[bytes]:
    """Split a capture into the chunks its decoder expects, dropping `#` comment lines (HJ 212 frames start `##`)."""
    for line in data.splitlines(keepends=True):
        if line.startswith(b"#") and not line.startswith(b"##"):
            continue
        if decoder_kind == "hj212":
            # Frame lists (one frame per line, optionally `frame<TAB>source`) lose their CRLF; restore it.
            frame = line.split(b"\t", 1)[0].rstrip(b"\r\n")
            if frame:
                yield frame + b"\r\n"
        else:
            yield line


def replay(path: Path, profile: Profile, device: str, now_ms: int, tally: ReplayTally) -> Iterator[Reading]:
    """Yield every reading of the capture at `path`, counting outcomes into `tally`."""
    decoder = make_decoder(profile)
    normalizer = Normalizer(device, profile.measures)
    for chunk in capture_chunks(path.read_bytes(), profile.read.decoder):
        for reading in normalizer.normalize(decoder.feed(chunk, now_ms), now_ms):
            tally.qualities[reading.quality.value] += 1
            yield reading
    tally.outcomes.update(decoder.stats.counts)
    tally.outcomes.update(normalizer.stats.counts)


def rfc3339(ts_ms: int) -> str:
    """Format UTC milliseconds as RFC 3339 with a `Z` suffix and millisecond precision."""
    stamp = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def reading_record(reading: Reading) -> dict[str, object]:
    """Return the replay JSON object of one reading."""
    return {
        "device": reading.device,
        "quantity": reading.quantity,
        "value": reading.value,
        "unit": reading.unit,
        "ts": rfc3339(reading.ts_ms),
        "quality": reading.quality.value,
        "reason": None if reading.reason is None else reading.reason.value,
    }
