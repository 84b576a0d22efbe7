"""Unit tests of the NMEA decoder's tricky rules: framing, checksums, validity, satellites, time."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

import pynmea2
import pytest

from device_profiles import load_profile
from device_profiles.schema import NmeaRead
from device_profiles.vocabulary import QUANTITIES
from edge_agent.decode.base import Sample
from edge_agent.decode.nmea import NmeaDecoder, parse_sentence
from edge_agent.decode.nmea_constellations import satellite
from edge_agent.decode.nmea_sentences import (
    Gga,
    Gsa,
    Gsv,
    NmeaChecksumError,
    NmeaError,
    NmeaFramingError,
    UnknownSentence,
    checksum,
)

NOW = int(datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp() * 1000)
PROFILE = Path(__file__).resolve().parents[2] / "device_profiles" / "gnss-nmea.yaml"


def nmea(body: str) -> bytes:
    """Frame `body` as a sentence with its checksum and CRLF (checksum computed independently)."""
    return f"${body}*{reduce(lambda a, c: a ^ ord(c), body, 0):02X}\r\n".encode()


def ms(text: str) -> int:
    """Parse an ISO UTC time into epoch ms."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def decode(*chunks: bytes, settings: NmeaRead | None = None, now: int = NOW) -> tuple[list[Sample], NmeaDecoder]:
    """Feed chunks to a fresh decoder, flush, return the samples and the decoder."""
    decoder = NmeaDecoder(settings)
    out: list[Sample] = []
    for chunk in chunks:
        out += decoder.feed(chunk, now)
    return out + decoder.flush(now), decoder


def values(samples: list[Sample]) -> dict[str, float]:
    """Map key -> value (last wins)."""
    return {s.key: s.value for s in samples}


GGA = "GPGGA,123519.00,4807.038,N,01131.324,E,1,08,0.9,545.4,M,46.9,M,,"
RMC = "GPRMC,123519.00,A,4807.038,N,01131.324,E,022.4,084.4,230394,003.1,W"


def test_checksum_fold_equals_bytewise_xor() -> None:
    """The folded checksum equals the byte-by-byte XOR for every length up to 600."""
    body = bytes(range(32, 127)) * 7
    for n in range(600):
        assert checksum(body[:n]) == reduce(lambda a, b: a ^ b, body[:n], 0)


def test_gga_units_and_signs() -> None:
    """A GGA yields signed degrees, metres MSL, DOP and counts; RMC speed is converted from knots."""
    samples, _ = decode(nmea(GGA.replace(",N,", ",S,").replace(",E,", ",W,")) + nmea(RMC))
    v = values(samples)
    assert v["latitude"] == pytest.approx(-(48 + 7.038 / 60))
    assert v["longitude"] == pytest.approx(-(11 + 31.324 / 60))
    assert v["altitude"] == 545.4
    assert v["hdop"] == 0.9
    assert v["fix_quality"] == 1.0
    assert v["sats_used"] == 8.0
    assert v["speed"] == pytest.approx(22.4 * 1852 / 3600)
    assert v["course"] == 84.4
    assert all(s.ts_ms == ms("1994-03-23T12:35:19") for s in samples)
    assert set(v) <= set(QUANTITIES)


def test_empty_fields_are_none_not_zero() -> None:
    """Empty GGA fields type to None (pynmea2 and naive parsers would give 0.0 or '')."""
    gga = parse_sentence(nmea("GPGGA,123519,,,,,0,,,,M,,M,,"))
    assert isinstance(gga, Gga)
    assert (gga.latitude, gga.longitude, gga.quality, gga.sats_used, gga.hdop, gga.altitude) == (
        None,
        None,
        0,
        None,
        None,
        None,
    )
    samples, _ = decode(nmea("GPGGA,123519,,,,,0,,,,M,,M,,"))
    assert values(samples) == {"fix_quality": 0.0}


def test_signal_id_is_not_a_phantom_satellite() -> None:
    """The NMEA 4.10 Signal ID after the GSV blocks is read as the signal, not as a fifth satellite."""
    line = nmea("GPGSV,1,1,02,01,40,083,46,02,17,308,41,8")
    gsv = parse_sentence(line)
    assert isinstance(gsv, Gsv)
    assert [s.svid for s in gsv.sats] == [1, 2]
    assert gsv.signal_id == 8
    # pynmea2 alone reads the Signal ID "8" as the PRN of a third satellite.
    assert pynmea2.parse(line.decode().strip()).sv_prn_num_3 == "8"


def test_same_satellite_on_two_signals_counts_once() -> None:
    """A satellite in both the L1 and the L5 GSV group is one satellite in view, not two."""
    samples, _ = decode(
        nmea(GGA),
        nmea("GPGSV,1,1,02,01,40,083,46,02,17,308,41,1"),
        nmea("GPGSV,1,1,02,01,40,083,40,03,17,308,41,8"),
    )
    assert values(samples)["sats_in_view_gps"] == 3.0


def test_rmc_void_does_not_void_a_valid_gga() -> None:
    """An RMC with status V in an epoch whose GGA has a fix: the position comes from the GGA."""
    samples, _ = decode(nmea(GGA) + nmea(RMC.replace(",A,", ",V,")))
    assert values(samples)["latitude"] == pytest.approx(48 + 7.038 / 60)


def test_rmc_nav_status_v_is_still_a_fix() -> None:
    """An RMC with status A and NMEA 4.1 navigation status V (Quectel) is valid, unlike pynmea2's is_valid."""
    line = nmea("GPRMC,022021.00,A,3644.759368,S,17444.072860,E,0.0,301.9,071020,18.3,E,A,V")
    assert not pynmea2.parse(line.decode().strip()).is_valid
    samples, _ = decode(line)
    assert values(samples)["latitude"] == pytest.approx(-(36 + 44.759368 / 60))


def test_rmc_void_alone_gives_no_position() -> None:
    """Coordinates of a no-fix RMC are ignored and the epoch is counted as no_fix."""
    samples, decoder = decode(nmea(RMC.replace(",A,", ",V,")))
    assert "latitude" not in values(samples)
    assert decoder.stats.counts["no_fix"] == 1


@pytest.mark.parametrize("quality", [0, 8])
def test_gga_quality_0_and_8_are_invalid(quality: int) -> None:
    """GGA quality 0 (no fix) and 8 (simulation) give no position, but report the quality."""
    samples, _ = decode(nmea(GGA.replace(",E,1,", f",E,{quality},")))
    v = values(samples)
    assert "latitude" not in v
    assert v["fix_quality"] == quality


def test_gns_mode_decides_validity() -> None:
    """A GNS counts when any system mode is a fix (`NA`), not when all are N."""
    fix = "GNGNS,123519.00,4807.038,N,01131.324,E,NA,08,0.9,545.4,46.9,,,V"
    assert "latitude" in values(decode(nmea(fix))[0])
    assert "latitude" not in values(decode(nmea(fix.replace(",NA,", ",NN,")))[0])


def test_null_island_is_never_a_position() -> None:
    """A 'valid' fix at exactly (0, 0) is dropped and counted."""
    samples, decoder = decode(nmea("GPGGA,123519,0000.000,N,00000.000,E,1,08,0.9,5.4,M,46.9,M,,"))
    assert "latitude" not in values(samples)
    assert decoder.stats.counts["null_island"] == 1


def test_double_dollar_collapses() -> None:
    """`$$GPGGA` decodes as `$GPGGA`, without counting junk."""
    samples, decoder = decode(b"$" + nmea(GGA))
    assert "latitude" in values(samples)
    assert decoder.stats.counts["junk_bytes"] == 0


def test_junk_and_binary_resync() -> None:
    """Junk, NULs, escape codes and an interrupted sentence are dropped; the next `$` resyncs."""
    stream = b"\x00\x00\x1b[2Jgarbage$GPGGA,123519.00,48" + nmea(GGA) + b"\x1b[0m"
    samples, decoder = decode(stream)
    assert "latitude" in values(samples)
    assert decoder.stats.counts["sentences"] == 1
    assert decoder.stats.counts["junk_bytes"] == len(stream) - len(nmea(GGA))


def test_binary_inside_a_sentence_is_rejected() -> None:
    """A line holding a NUL is a framing error, raised by parse_sentence and counted by the decoder."""
    line = b"$GPRMC,000346.03,A,4808\x00\x00\x00*12\r\n"
    with pytest.raises(NmeaFramingError):
        parse_sentence(line)
    assert decode(line)[1].stats.counts["framing"] == 1


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r"])
def test_line_endings(ending: bytes) -> None:
    """CRLF, LF and CR all end a sentence."""
    samples, _ = decode(nmea(GGA).rstrip() + ending + nmea(RMC).rstrip() + ending)
    assert "latitude" in values(samples)


def test_split_at_every_byte_offset() -> None:
    """A sentence split at any byte between two feeds decodes exactly as when fed whole."""
    whole = nmea(GGA) + nmea(RMC)
    expected, _ = decode(whole)
    assert expected
    for cut in range(len(whole) + 1):
        assert decode(whole[:cut], whole[cut:])[0] == expected


def test_byte_by_byte_feed() -> None:
    """Feeding one byte at a time gives the same samples."""
    whole = nmea(GGA) + nmea(RMC)
    assert decode(*(whole[i : i + 1] for i in range(len(whole))))[0] == decode(whole)[0]


def test_sentence_cap() -> None:
    """Sentences longer than 82 bytes are fine up to max_sentence_bytes; longer ones are dropped, counted."""
    long_ok = "GPTXT,01,01,02," + "x" * 150
    assert decode(nmea(long_ok))[1].stats.counts["ignored"] == 1
    settings = NmeaRead(max_sentence_bytes=100)
    samples, decoder = decode(nmea(long_ok), nmea(GGA), settings=settings)
    assert decoder.stats.counts["too_long"] == 1
    assert "latitude" in values(samples)
    runaway = b"$GPGGA," + b"1" * 5000
    samples, decoder = decode(runaway, b"\r\n" + nmea(GGA), settings=settings)
    assert decoder.stats.counts["too_long"] == 1
    assert "latitude" in values(samples)


def test_bad_and_missing_checksums() -> None:
    """A wrong or missing checksum rejects the sentence, counted as `checksum`."""
    bad = nmea(GGA).replace(b"*", b"0*")
    with pytest.raises(NmeaChecksumError):
        parse_sentence(bad)
    with pytest.raises(NmeaChecksumError):
        parse_sentence(f"${GGA}\r\n".encode())
    samples, decoder = decode(bad, f"${GGA}\r\n".encode())
    assert samples == []
    assert decoder.stats.counts["checksum"] == 2


@pytest.mark.parametrize("entry", ["GPGGA", "GGA", "gga"])
def test_checksumless_allowlist(entry: str) -> None:
    """A profile may allow a sentence type without checksum, by full address or by type for all talkers."""
    settings = NmeaRead(checksumless=(entry,))
    samples, decoder = decode(f"${GGA}\r\n".encode(), settings=settings)
    assert "latitude" in values(samples)
    _, decoder = decode(f"${RMC}\r\n".encode(), settings=settings)
    assert decoder.stats.counts["checksum"] == 1


def test_unknown_sentence_is_counted() -> None:
    """A checksummed sentence of a type pynmea2 does not know is `unknown_sentence`, not an exception."""
    with pytest.raises(UnknownSentence):
        parse_sentence(nmea("GPXYZ,1,2,3"))
    assert decode(nmea("GPXYZ,1,2,3"), nmea("SNRSTAT,1,1,0,0"))[1].stats.counts["unknown_sentence"] == 2


def test_gn_gsa_with_system_id() -> None:
    """GN GSA with an NMEA 4.10 System ID attributes its numbers to that system (4 = BeiDou)."""
    gsa = parse_sentence(nmea("GNGSA,A,3,13,27,37,,,,,,,,,,1.5,0.9,1.2,4"))
    assert isinstance(gsa, Gsa)
    assert (gsa.system_id, gsa.svids, gsa.pdop, gsa.hdop, gsa.vdop) == (4, (13, 27, 37), 1.5, 0.9, 1.2)
    samples, _ = decode(
        nmea(GGA),
        nmea("GNGSA,A,3,02,07,14,,,,,,,,,,1.5,0.9,1.2,1"),
        nmea("GNGSA,A,3,13,27,37,,,,,,,,,,1.5,0.9,1.2,4"),
    )
    v = values(samples)
    assert (v["sats_used_gps"], v["sats_used_beidou"], v["pdop"], v["vdop"]) == (3.0, 3.0, 1.5, 1.2)


def test_legacy_prn_ranges_without_system_id() -> None:
    """Without a System ID, GN/GP GSA numbers follow gpsd's ranges; SBAS counts toward none of the six."""
    samples, _ = decode(nmea(GGA), nmea("GNGSA,A,3,05,70,305,410,215,195,40,131,,,,,1.5,0.9,1.2"))
    v = values(samples)
    counts = {k.removeprefix("sats_used_"): v[k] for k in v if k.startswith("sats_used_")}
    assert counts == {"gps": 1, "glonass": 1, "galileo": 1, "beidou": 2, "qzss": 1, "navic": 0}


@pytest.mark.parametrize(
    ("talker", "number", "system_id", "expected"),
    [
        ("GP", 12, None, ("gps", 12)),
        ("GP", 40, None, ("sbas", 127)),
        ("GP", 135, None, ("sbas", 135)),
        ("GP", 193, None, ("qzss", 1)),
        ("GL", 70, None, ("glonass", 6)),
        ("GL", 6, None, ("glonass", 6)),
        ("GA", 7, None, ("galileo", 7)),
        ("GB", 209, None, ("beidou", 9)),
        ("BD", 37, None, ("beidou", 37)),
        ("PQ", 5, None, ("beidou", 5)),
        ("GQ", 2, None, ("qzss", 2)),
        ("QZ", 193, None, ("qzss", 1)),
        ("GI", 3, None, ("navic", 3)),
        ("GN", 82, 2, ("glonass", 18)),
        ("GN", 13, 4, ("beidou", 13)),
        ("GN", 13, 1, ("gps", 13)),
        ("GN", 300, None, None),
    ],
)
def test_constellation_mapping(talker: str, number: int, system_id: int | None, expected: object) -> None:
    """Talker, number and System ID map to (constellation, number) as gpsd's nmeaid_to_prn does."""
    assert satellite(talker, number, system_id) == expected


def test_quectel_pqgsv_is_beidou() -> None:
    """Quectel's `$PQGSV` satellites count as BeiDou in view; `$PQGSA` as BeiDou used."""
    samples, _ = decode(
        nmea(GGA),
        nmea("PQGSV,1,1,02,05,40,083,46,12,17,308,41"),
        nmea("PQGSA,A,3,05,12,,,,,,,,,,,1.5,0.9,1.2"),
    )
    v = values(samples)
    assert (v["sats_in_view_beidou"], v["sats_used_beidou"]) == (2.0, 2.0)


def test_gsv_group_counts_only_when_complete() -> None:
    """Satellites in view are reported once a GSV group is complete, not from a part of it."""
    part1 = nmea("GPGSV,2,1,05,01,40,083,46,02,17,308,41,03,07,344,39,04,22,228,45")
    part2 = nmea("GPGSV,2,2,05,05,10,100,30")
    assert "sats_in_view_gps" not in values(decode(nmea(GGA), part1)[0])
    assert values(decode(nmea(GGA), part1, part2)[0])["sats_in_view_gps"] == 5.0


def test_midnight_rollover_takes_next_date() -> None:
    """A time-only GGA after midnight takes the last RMC date plus one day (08:00 in China)."""
    samples, _ = decode(
        nmea("GPGGA,235959.00,3114.8902,N,12135.2443,E,1,08,0.9,5.4,M,8.3,M,,"),
        nmea("GNRMC,235959.00,A,3114.8902,N,12135.2443,E,0.3,4.9,311224,,,A"),
        nmea("GPGGA,000000.00,3114.8902,N,12135.2443,E,1,08,0.9,5.4,M,8.3,M,,"),
        nmea("GPGGA,000001.00,3114.8902,N,12135.2443,E,1,08,0.9,5.4,M,8.3,M,,"),
        now=ms("2025-01-01T00:00:05"),
    )
    stamps = sorted({s.ts_ms for s in samples if s.ts_ms is not None})
    assert stamps == [ms("2024-12-31T23:59:59"), ms("2025-01-01T00:00:00"), ms("2025-01-01T00:00:01")]


def test_no_date_yet_uses_the_nearest_day_to_now() -> None:
    """With no date known, 23:59:58 received at 00:00:01 belongs to the day before `now`."""
    line = nmea("GPGGA,235958.00,3114.8902,N,12135.2443,E,1,08,0.9,5.4,M,8.3,M,,")
    samples, _ = decode(line, now=ms("2025-01-01T00:00:01"))
    assert {s.ts_ms for s in samples} == {ms("2024-12-31T23:59:58")}
    samples, _ = decode(line, now=ms("2025-01-01T23:59:59"))
    assert {s.ts_ms for s in samples} == {ms("2025-01-01T23:59:58")}


def test_leap_second_60_is_accepted() -> None:
    """`235960` (a leap second) is a valid time: it lands on the next day's 00:00:00, like POSIX time."""
    samples, decoder = decode(
        nmea("GPRMC,235959.00,A,3114.8902,N,12135.2443,E,0.3,4.9,311216,,,A"),
        nmea("GPGGA,235960.00,3114.8902,N,12135.2443,E,1,08,0.9,5.4,M,8.3,M,,"),
        now=ms("2017-01-01T00:00:05"),
    )
    assert decoder.stats.counts["malformed"] == 0
    assert {s.ts_ms for s in samples} == {ms("2016-12-31T23:59:59"), ms("2017-01-01T00:00:00")}


def test_repeated_gga_time_is_stale() -> None:
    """A GGA repeating the previous GGA's time (receiver lost lock) starts a new epoch marked stale."""
    samples, _ = decode(nmea(GGA), nmea(GGA), nmea(GGA.replace("123519.00", "123520.00")))
    by_stale = {(s.ts_ms, s.stale) for s in samples if s.key == "latitude"}
    t = ms("2024-06-01T12:35:19")
    assert by_stale == {(t, False), (t, True), (t + 1000, False)}


def test_dates_outside_the_window_are_clock_suspect() -> None:
    """A date more than a year from `now` (GPS week rollover: 1999) marks the epoch clock_suspect."""
    rollover = nmea("GPRMC,000425.00,A,4808.9993,N,01135.0798,E,0.1,0.0,220899,,,A")
    samples, _ = decode(rollover, now=ms("2019-04-07T00:05:00"))
    assert samples
    assert all(s.clock_suspect for s in samples)
    current = nmea("GPRMC,000425.00,A,4808.9993,N,01135.0798,E,0.1,0.0,070419,,,A")
    samples, _ = decode(current, now=ms("2019-04-07T00:05:00"))
    assert samples
    assert not any(s.clock_suspect for s in samples)


def test_cycle_ender_is_learned() -> None:
    """After two cycles the decoder learns the last sentence and emits each epoch as soon as it arrives."""
    decoder = NmeaDecoder()

    def cycle(t: str) -> bytes:
        return (
            nmea(GGA.replace("123519.00", t))
            + nmea("GPGSA,A,3,01,02,03,04,,,,,,,,,1.5,0.9,1.2")
            + nmea(RMC.replace("123519.00", t))
        )

    fed = [decoder.feed(cycle(f"1235{second}.00"), NOW) for second in (19, 20, 21, 22)]
    t = ms("1994-03-23T12:35:19")
    # Cycle 1 waits for the time to change; from cycle 3 on, the RMC ends its own epoch at once.
    assert [{s.ts_ms for s in out} for out in fed] == [set(), {t}, {t + 1000, t + 2000}, {t + 3000}]


def test_every_epoch_quantity_carries_the_epoch_time() -> None:
    """All samples of one epoch (GGA, GSA, GSV, VTG, RMC) share the epoch's UTC time."""
    samples, _ = decode(
        nmea(GGA),
        nmea("GPGSA,A,3,01,02,,,,,,,,,,,1.5,0.9,1.2"),
        nmea("GPGSV,1,1,02,01,40,083,46,02,17,308,41"),
        nmea("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A"),
        nmea(RMC),
    )
    assert len(samples) > 15
    assert {s.ts_ms for s in samples} == {ms("1994-03-23T12:35:19")}


def test_parse_sentence_rejects_non_sentences() -> None:
    """parse_sentence raises NmeaError subclasses (with a countable reason) for non-sentences."""
    for line in (b"", b"GPGGA,1*00", b"$", b"$*00", b"$GPGGA*zz", b"$\xff\xfe*00"):
        with pytest.raises(NmeaError) as info:
            parse_sentence(line)
        assert info.value.reason in {"framing", "checksum", "malformed", "unknown_sentence"}


def test_profile_is_valid_and_covers_every_quantity() -> None:
    """The gnss-nmea profile loads, reads serial at 9600 with the nmea decoder, and measures all outputs."""
    profile = load_profile(PROFILE)
    assert (profile.read.transport, profile.read.decoder) == ("serial", "nmea")
    assert profile.read.serial is not None
    assert profile.read.serial.baudrate == 9600
    sources = {m.source for m in profile.measures}
    assert all(m.source == m.quantity for m in profile.measures)
    constellations = ("gps", "glonass", "galileo", "beidou", "qzss", "navic")
    expected = {
        "latitude",
        "longitude",
        "altitude",
        "speed",
        "course",
        "hdop",
        "pdop",
        "vdop",
        "fix_quality",
        "sats_used",
        *(f"sats_used_{c}" for c in constellations),
        *(f"sats_in_view_{c}" for c in constellations),
    }
    assert sources == expected
    decoder = NmeaDecoder(profile.read.nmea)
    samples = decoder.feed(nmea(GGA) + nmea(RMC), NOW) + decoder.flush(NOW)
    assert {s.key for s in samples} <= sources
