"""Tests of fault injection: parsing, seeded rates, what each fault does to a frame or a value."""

from __future__ import annotations

import random
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.errors import FaultSpecError
from simulators.faults import Faults, FaultSpec, corrupt_checksum, parse_faults
from simulators.hj212_encode import frame, reply_valid
from simulators.nmea_encode import sentence

NMEA = sentence("GNGGA", ["120000.00", "3448.00000", "N", "11331.80000", "E", "1", "12", "0.9", "110.0", "M"])
HJ212 = frame("QN=20240601160000000;ST=22;CN=2011;PW=123456;MN=X;Flag=4;CP=&&DataTime=20240601160000&&")


def nmea_ok(line: bytes) -> bool:
    """Check an NMEA sentence's checksum."""
    text = line.decode("latin-1").rstrip("\r\n")
    if not text.startswith("$") or len(text) < 4 or text[-3] != "*":
        return False
    return reduce(lambda a, b: a ^ b, text[1:-3].encode("latin-1"), 0) == int(text[-2:], 16)


def test_parse_faults_reads_rates_and_durations() -> None:
    """`garbage=0.01,checksum=0.02,unplug_for=5` sets those fields and leaves the rest at zero."""
    spec = parse_faults(" garbage=0.01, checksum=0.02,unplug_for=5 ")
    assert spec == FaultSpec(garbage=0.01, checksum=0.02, unplug_for=5.0)
    assert spec.active
    assert not parse_faults("").active


@pytest.mark.parametrize("text", ["bogus=0.1", "garbage", "garbage=x", "checksum=1.5", "unplug_for=-1"])
def test_parse_faults_refuses_bad_specs(text: str) -> None:
    """Unknown names, missing or non-numeric rates and probabilities outside [0, 1] are errors."""
    with pytest.raises(FaultSpecError):
        parse_faults(text)


@pytest.mark.parametrize("name", ["garbage", "checksum", "truncate", "splice", "skew", "spike"])
def test_each_fault_happens_at_its_rate_with_a_seed(name: str) -> None:
    """Over 5000 draws a 5 % fault hits 5 % ± 1 %, and the same seed repeats the same damage."""
    spec = FaultSpec(**{name: 0.05})

    def run(seed: int) -> tuple[int, list[tuple[bytes, float, float]]]:
        faults = Faults(spec, random.Random(seed))
        out = [(faults.frame(NMEA), faults.value(float(i), 0.0), faults.clock_offset_s()) for i in range(5000)]
        return faults.counts[name], out

    hits, first = run(42)
    assert 200 <= hits <= 300
    assert run(42) == (hits, first)
    assert run(43)[1] != first


def test_outages_start_at_their_rate_per_second() -> None:
    """unplug=0.01 per second over 10000 one-second ticks starts about 100 outages."""
    faults = Faults(FaultSpec(unplug=0.01), random.Random(1))
    starts = [faults.outage(1.0) for _ in range(10000)]
    assert 70 <= starts.count("unplug") <= 130
    assert starts.count("silence") == 0


def test_checksum_fault_breaks_nmea_and_hj212_checks() -> None:
    """A corrupted checksum digit makes both an NMEA and an HJ 212 frame fail their own check."""
    rng = random.Random(3)
    assert nmea_ok(NMEA)
    assert reply_valid(HJ212[:-2], "hj212")
    for _ in range(50):
        assert not nmea_ok(corrupt_checksum(NMEA, rng))
        bad = corrupt_checksum(HJ212, rng)
        assert bad.endswith(b"\r\n")
        assert not reply_valid(bad[:-2], "hj212")


def test_truncate_keeps_the_line_end_and_splice_glues_the_next_frame() -> None:
    """A truncated frame is a short CRLF line; a spliced frame's stump runs into the next whole frame."""
    cut = Faults(FaultSpec(truncate=1.0), random.Random(5)).frame(NMEA)
    assert cut.endswith(b"\r\n")
    assert len(cut) < len(NMEA)
    faults = Faults(FaultSpec(splice=1.0), random.Random(5))
    assert faults.frame(NMEA) == b""
    faults.spec = FaultSpec()
    glued = faults.frame(NMEA)
    assert glued.endswith(NMEA)
    stump = glued[: -len(NMEA)]
    assert stump
    assert NMEA.startswith(stump)
    assert b"\r\n" not in stump


def test_binary_frames_get_a_bad_crc_byte_not_a_line_end() -> None:
    """For RTU frames the checksum fault flips the last byte and truncation adds no CR LF."""
    rtu = bytes.fromhex("0103040001000AEA30")
    faults = Faults(FaultSpec(checksum=1.0), random.Random(9))
    bad = faults.frame(rtu, binary=True)
    assert bad[:-1] == rtu[:-1]
    assert bad[-1] != rtu[-1]
    cut = Faults(FaultSpec(truncate=1.0), random.Random(9)).frame(rtu, binary=True)
    assert rtu.startswith(cut)
    assert len(cut) < len(rtu)


def test_drift_grows_with_scenario_time_and_spikes_jump_up() -> None:
    """drift=0.1 adds 10 % of the value per hour; a spike adds 3 to 10 times the value (at least 1)."""
    drift = Faults(FaultSpec(drift=0.1))
    assert drift.value(50.0, 0.0) == 50.0
    assert drift.value(50.0, 3600.0) == pytest.approx(55.0)
    spike = Faults(FaultSpec(spike=1.0), random.Random(2))
    assert 50.0 * 4 <= spike.value(50.0, 0.0) <= 50.0 * 11
    assert 3.0 <= spike.value(0.0, 0.0) <= 10.0


def test_skew_shifts_the_clock_only_when_it_hits() -> None:
    """skew=0 never moves the clock; skew=1 always moves it by a whole number of minutes."""
    assert Faults(FaultSpec()).clock_offset_s() == 0.0
    offset = Faults(FaultSpec(skew=1.0), random.Random(4)).clock_offset_s()
    assert offset != 0.0
    assert offset % 60 == 0


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), seed=st.integers(0, 2**32))
def test_frame_faults_never_fail_on_any_bytes(data: bytes, seed: int) -> None:
    """Every frame fault accepts arbitrary bytes, text or binary, without raising."""
    spec = FaultSpec(garbage=0.5, checksum=0.5, truncate=0.5, splice=0.5)
    faults = Faults(spec, random.Random(seed))
    assert isinstance(faults.frame(data), bytes)
    assert isinstance(faults.frame(data, binary=True), bytes)
