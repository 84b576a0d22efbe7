"""Golden decode cases: each tests/golden/<case>/ input through its profile's decoder gives expected.jsonl.

A case folder holds `input.*` (a capture), `expected.jsonl` (one decoded sample per line: `key`, `value`
and optionally `ts_ms`, `flag`, `stale`, `clock_suspect`) and optionally `profile.txt` (the profile's
name; the folder name otherwise), `now_ms.txt` (the arrival time fed with the input) and `stats.json`
(decode outcome counts that must match exactly).
"""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from device_profiles import BUNDLED_DIR, load_profile
from edge_agent.decode.base import Sample
from edge_agent.decode.factory import make_decoder

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
DEFAULT_NOW_MS = 1_718_000_000_000
CASES = sorted(p for p in GOLDEN.iterdir() if (p / "expected.jsonl").is_file())


def read_optional(case: Path, name: str) -> str | None:
    """Return the stripped text of an optional case file, or None."""
    path = case / name
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def input_file(case: Path) -> Path:
    """Return the case's single `input.*` file."""
    (path,) = case.glob("input.*")
    return path


def matches(sample: Sample, expected: dict[str, object]) -> bool:
    """Whether a sample has the expected key and value (to float precision) and any other listed field."""
    value = expected["value"]
    assert isinstance(value, int | float)
    if sample.key != expected["key"] or not math.isclose(sample.value, value, rel_tol=1e-9, abs_tol=1e-12):
        return False
    return all(getattr(sample, name) == want for name, want in expected.items() if name not in ("key", "value"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path) -> None:
    """The case's capture decodes to exactly its expected samples, in order (and its outcome counts)."""
    profile = load_profile(BUNDLED_DIR / f"{read_optional(case, 'profile.txt') or case.name}.yaml")
    decoder = make_decoder(profile)
    now_ms = int(read_optional(case, "now_ms.txt") or DEFAULT_NOW_MS)
    samples = decoder.feed(input_file(case).read_bytes(), now_ms)
    expected = [orjson.loads(line) for line in (case / "expected.jsonl").read_bytes().splitlines() if line]
    assert len(samples) == len(expected), samples
    for i, (sample, want) in enumerate(zip(samples, expected, strict=True)):
        assert matches(sample, want), f"sample {i}: {sample} != {want}"
    stats = read_optional(case, "stats.json")
    if stats is not None:
        assert dict(decoder.stats.counts) == orjson.loads(stats)


def test_golden_cases_exist() -> None:
    """The golden folder is found (so a moved folder cannot silently run zero cases)."""
    assert len(CASES) >= 7
