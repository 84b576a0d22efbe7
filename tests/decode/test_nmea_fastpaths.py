"""The NMEA decoder's fast paths (framer split, framed-line parse, direct field cut) agree with the general ones."""

from __future__ import annotations

from collections import Counter
from functools import reduce
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.decode.nmea import NmeaDecoder
from edge_agent.decode.nmea_framing import NmeaFramer
from edge_agent.decode.nmea_sentences import NmeaError, NmeaSentence, parse_framed, parse_sentence

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
REAL = [
    line.rstrip(b"\r\n")
    for log in ("ublox-neo-m9n-nmea.log", "quectel.log", "beidou-gb.log", "sirfstarv-nmea.log")
    for line in (CORPUS / "gnss" / log).read_bytes().splitlines()[:300]
    if line.startswith(b"$")
]
CAP = 100
_ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r", b""])
_PIECES = st.one_of(
    st.builds(bytes.__add__, st.sampled_from(REAL), _ENDINGS),
    # Lines around the size cap, where the fast path hands over to the scanner.
    st.builds(lambda n, end: b"$GPTXT," + b"x" * (n - 7) + end, st.integers(CAP - 2, CAP + 2), _ENDINGS),
    st.binary(max_size=20),
    st.sampled_from([b"$", b"$$", b"\r", b"\n", b"\r\n", b"*", b"\x00", b" ", b"$GPGGA," + b"1" * 150]),
)
_KINDS = st.sampled_from(["GGA", "RMC", "GNS", "GLL", "VTG", "ZDA", "GSA", "GSV", "TXT", "GST", "XYZ", "QQQ"])
_TALKER = st.text(alphabet="ABGLNPQZ0123456789", min_size=2, max_size=2)
_FIELD = st.text(alphabet="0123456789.-NSEWAVDM", max_size=10)


def checksummed(body: bytes) -> bytes:
    """Frame `body` as `$body*HH` with its checksum computed independently."""
    return b"$" + body + f"*{reduce(lambda a, c: a ^ c, body, 0):02X}".encode()


def outcome(parse: object, line: bytes) -> NmeaSentence | tuple[str, str]:
    """Return the record a parser gives for `line`, or the class and reason of its error."""
    assert callable(parse)
    try:
        result: NmeaSentence = parse(line)
    except NmeaError as exc:
        return type(exc).__name__, exc.reason
    return result


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=30), st.lists(st.integers(1, 300), min_size=1, max_size=20))
def test_framer_split_equals_the_byte_scanner(pieces: list[bytes], cuts: list[int]) -> None:
    """Fed in any reads, the framer gives the same lines and counts as its byte scanner over the whole stream."""
    stream = b"".join(pieces) + b"\n"  # a final line end, so nothing is left pending on either side
    reference = NmeaFramer(CAP)
    expected: list[bytes] = []
    reference._scan(stream, expected)  # the scanner is the specification; feed() adds a fast path to it
    framer = NmeaFramer(CAP)
    lines: list[bytes] = []
    pos, i = 0, 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        lines += framer.feed(stream[pos : pos + size])
        pos, i = pos + size, i + 1
    assert lines == expected
    assert +framer.counts == +reference.counts


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(REAL),
    st.integers(0, 120),
    st.binary(max_size=3),
    st.sampled_from(["keep", "fix", "drop"]),
)
def test_parse_framed_equals_parse_sentence(line: bytes, at: int, junk: bytes, checksum: str) -> None:
    """For any line the framer can cut, parse_framed gives the record or error parse_sentence gives."""
    body = line[1 : line.rfind(b"*")] if b"*" in line else line[1:]
    i = at % (len(body) + 1)
    mutated = (body[:i] + junk + body[i:]).replace(b"$", b"").replace(b"\r", b"").replace(b"\n", b"")
    candidate = {
        "keep": b"$" + mutated + line[len(body) + 1 :],
        "fix": checksummed(mutated),
        "drop": b"$" + mutated,
    }[checksum]
    assert outcome(parse_framed, candidate) == outcome(parse_sentence, candidate)


@settings(max_examples=300, deadline=None)
@given(_TALKER, _KINDS, st.lists(_FIELD, max_size=22))
def test_direct_cut_equals_the_pynmea2_grammar(talker: str, kind: str, fields: list[str]) -> None:
    """Any talker sentence gives the same record or error by the direct cut (upper case) and the grammar."""
    body = ",".join([talker + kind, *fields]).encode()
    lower = body[:5].lower() + body[5:]  # pynmea2's grammar reads any case; the direct cut only upper case
    assert outcome(parse_sentence, checksummed(body)) == outcome(parse_sentence, checksummed(lower))


def test_lower_case_address_types_like_upper_case() -> None:
    """A lower-case address takes pynmea2's grammar, the upper-case one the direct cut: same records."""
    compared = Counter[str]()
    for line in REAL:
        body = line[1 : line.rfind(b"*")]
        if body[:1] == b"P" or body[5:6] != b",":
            continue
        upper = outcome(parse_sentence, checksummed(body))
        lower = outcome(parse_sentence, checksummed(body[:5].lower() + body[5:]))
        assert lower == upper, line
        compared[body[2:5].decode()] += 1
    assert {"GGA", "RMC", "GSA", "GSV"} <= set(compared)


def test_a_repeated_bad_line_is_rejected_every_time() -> None:
    """Memoized conversions and the line cache never keep a failure: a bad line repeated is counted twice."""
    bad_time = checksummed(b"GPGGA,256119.00,4807.038,N,01131.324,E,1,08,0.9,545.4,M,46.9,M,,") + b"\r\n"
    bad_minutes = checksummed(b"GPRMC,123519.00,A,4861.038,N,01131.324,E,022.4,084.4,230394,,") + b"\r\n"
    decoder = NmeaDecoder()
    decoder.feed(bad_time + bad_minutes + bad_time + bad_minutes, 0)
    assert decoder.stats.counts["malformed"] == 4
    assert decoder.stats.counts["sentences"] == 0
