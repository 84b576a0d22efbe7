"""HJ 212 wire frames: one frame's bytes in, a typed Frame (or an Hj212Error) out; and frames back out.

A frame is `##` + 4-digit byte length + data segment (`QN=...;...;CP=&&...&&`) + 4 hex CRC + `\\r\\n`.
Error tree (each `.reason` is a stable stats key)::

    DecodeError
    └── Hj212Error            hj212
        ├── Hj212FramingError framing   no `##`, length field or CRC field not digits
        ├── Hj212LengthError  length    length field disagrees with the bytes carried
        ├── Hj212CrcError     crc       CRC mismatch in the device's CRC mode
        ├── Hj212EncodingError encoding data segment is not UTF-8
        ├── Hj212HeaderError  header    field without `=`, repeated, non-word key, non-numeric Flag/PNUM/PNO
        ├── Hj212DataError    data      no `CP=&&...&&` data area, or an entry without `=`
        └── Hj212TimeError    time      DataTime is not a valid yyyyMMddHHmmss[fff]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final, NamedTuple

from edge_agent.decode.base import DecodeError
from edge_agent.decode.hj212_crc import CrcMode, crc_hj212, expected_crc


class Hj212Error(DecodeError):
    """An HJ 212 frame or value could not be decoded."""

    reason = "hj212"


class Hj212FramingError(Hj212Error):
    """The bytes are not shaped like a frame (`##`, 4 length digits, 4 hex CRC digits)."""

    reason = "framing"


class Hj212LengthError(Hj212Error):
    """The length field does not match the number of data-segment bytes."""

    reason = "length"


class Hj212CrcError(Hj212Error):
    """The CRC does not match the data segment in the device's CRC mode."""

    reason = "crc"


class Hj212EncodingError(Hj212Error):
    """The data segment is not valid UTF-8."""

    reason = "encoding"


class Hj212HeaderError(Hj212Error):
    """A header field is malformed."""

    reason = "header"


class Hj212DataError(Hj212Error):
    """The `CP=&&...&&` data area is missing or malformed."""

    reason = "data"


class Hj212TimeError(Hj212Error):
    """A DataTime value is not a valid timestamp."""

    reason = "time"


class Item(NamedTuple):
    """One `code-suffix=value` entry of the data area, with the data flag of its code.

    Keys without `-` (`DataTime`, `PolId`, a bare `Flag`) have `code` = the key and `suffix` None.
    Codes are opaque: unknown or truncated ones (`a2106`, `011`) are kept as sent.
    """

    code: str
    suffix: str | None
    value: str
    flag: str | None


@dataclass(frozen=True, slots=True)
class Frame:
    """A parsed HJ 212 frame; header fields are None when the device left them out."""

    qn: str | None
    st: str | None
    cn: str | None
    pw: str | None
    mn: str | None
    flag: int | None
    pnum: int | None
    pno: int | None
    datatime: str | None
    items: tuple[Item, ...]
    # The frame's bytes without the trailing CR LF, and the CRC value it carried.
    raw: bytes
    crc: int
    # Header keys outside the standard set, in order, so nothing the device sent is lost.
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> int:
        """Protocol version from Flag bits 2+ (0 = 2005, 1 = 2017, 2 = 2025 family); 0 without Flag."""
        return 0 if self.flag is None else self.flag >> 2

    @property
    def ack(self) -> bool:
        """Whether the sender asks for a response (Flag bit 0)."""
        return self.flag is not None and bool(self.flag & 1)

    @property
    def split(self) -> bool:
        """Whether the frame is one packet of a split message (Flag bit 1; see PNUM/PNO)."""
        return self.flag is not None and bool((self.flag >> 1) & 1)


_CRC_FIELD: Final = re.compile(rb"[0-9A-Fa-f]{4}")
_STR_FIELDS: Final = frozenset({"QN", "ST", "CN", "PW", "MN"})
_INT_FIELDS: Final = frozenset({"Flag", "PNUM", "PNO"})
_FLAG_SUFFIXES: Final = frozenset({"Flag", "Flg"})


def _check_envelope(frame: bytes, crc_mode: CrcMode) -> tuple[bytes, int]:
    """Check `##`, length, CRC field and CRC; return the data segment and the CRC it carried."""
    if frame[:2] != b"##":
        raise Hj212FramingError("frame does not start with '##'")
    digits = frame[2:6]
    if len(digits) != 4 or not digits.isdigit():
        raise Hj212FramingError(f"length field {digits!r} is not 4 digits")
    length = int(digits)
    if len(frame) != length + 10:
        raise Hj212LengthError(f"length field says {length} bytes, frame carries {len(frame) - 10}")
    segment = frame[6 : 6 + length]
    crc_text = frame[6 + length :]
    if _CRC_FIELD.fullmatch(crc_text) is None:
        raise Hj212FramingError(f"CRC field {crc_text!r} is not 4 hex digits")
    received = int(crc_text, 16)
    want = expected_crc(segment, crc_mode)
    if want is not None and want != received:
        raise Hj212CrcError(f"CRC {crc_text.decode()} does not match {want:04X} ({crc_mode})")
    return segment, received


def _header(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Split `K=V;K=V;` header text into the standard fields and any extra ones."""
    fields: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    for part in text.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise Hj212HeaderError(f"header field {part[:40]!r} has no '='")
        if key in _STR_FIELDS or key in _INT_FIELDS:
            if key in fields:
                raise Hj212HeaderError(f"header field {key} appears twice")
            if key in _INT_FIELDS and not (value.isascii() and value.isdigit()):
                raise Hj212HeaderError(f"header field {key}={value[:20]!r} is not a number")
            fields[key] = value
        elif key.isascii() and key.isalnum():
            extra.append((key, value))
        else:
            # Real header keys are words; `##0117QN` means line noise spanned a frame (see the decoder).
            raise Hj212HeaderError(f"header key {key[:20]!r} is not alphanumeric")
    return fields, extra


def _items(cp: str) -> tuple[list[tuple[str, str | None, str]], dict[str, str]]:
    """Split the data area into (code, suffix, value) entries and the data flag of each code."""
    entries: list[tuple[str, str | None, str]] = []
    flags: dict[str, str] = {}
    for group in cp.split(";"):
        for part in group.split(","):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise Hj212DataError(f"data entry {part[:40]!r} has no '='")
            # Split on the last '-': codes themselves may not contain one, suffixes never do.
            code, dash, suffix = key.rpartition("-")
            if dash:
                if suffix in _FLAG_SUFFIXES:
                    flags[code] = value
                entries.append((code, suffix, value))
            else:
                entries.append((key, None, value))
    return entries, flags


def parse_frame(frame: bytes, crc_mode: CrcMode = "hj212") -> Frame:
    """Parse one frame (trailing CR LF optional); raise an Hj212Error subclass if it is not valid."""
    if frame[-2:] == b"\r\n":
        frame = frame[:-2]
    segment, received = _check_envelope(frame, crc_mode)
    try:
        text = segment.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Hj212EncodingError(f"data segment is not UTF-8: {exc}") from exc
    cp_at = text.find("CP=&&")
    if cp_at < 0:
        raise Hj212DataError("no 'CP=&&' data area")
    if cp_at > 0 and text[cp_at - 1] != ";":
        raise Hj212HeaderError("'CP=&&' is not a field of its own")
    if len(text) < cp_at + 7 or not text.endswith("&&"):
        raise Hj212DataError("data area is not closed by '&&'")
    fields, extra = _header(text[:cp_at])
    entries, flags = _items(text[cp_at + 5 : -2])
    datatime = None
    for code, suffix, value in entries:
        if suffix is None and code == "DataTime":
            datatime = value
            break
    flag_of = flags.get
    # tuple.__new__ skips the NamedTuple's Python-level __new__; one Item per entry makes it count.
    new = tuple.__new__
    flag = fields.get("Flag")
    pnum = fields.get("PNUM")
    pno = fields.get("PNO")
    return Frame(
        qn=fields.get("QN"),
        st=fields.get("ST"),
        cn=fields.get("CN"),
        pw=fields.get("PW"),
        mn=fields.get("MN"),
        flag=None if flag is None else int(flag),
        pnum=None if pnum is None else int(pnum),
        pno=None if pno is None else int(pno),
        datatime=datatime,
        items=tuple([new(Item, (code, suffix, value, flag_of(code))) for code, suffix, value in entries]),
        raw=frame,
        crc=received,
        extra=tuple(extra),
    )


def encode_frame(segment: str | bytes, crc_mode: CrcMode = "hj212") -> bytes:
    """Wrap a data segment (`QN=...;CP=&&...&&`) as a frame with length, CRC and CR LF."""
    data = segment.encode("utf-8") if isinstance(segment, str) else segment
    if len(data) > 9999:
        raise Hj212LengthError(f"data segment of {len(data)} bytes does not fit the 4-digit length field")
    crc = expected_crc(data, crc_mode)
    if crc is None:
        # Mode `none` checks nothing on receipt; send the standard CRC so any receiver accepts it.
        crc = crc_hj212(data)
    return b"##%04d%b%04X\r\n" % (len(data), data, crc)


def format_segment(header: Sequence[tuple[str, str]], cp: Sequence[tuple[str, str]] = ()) -> str:
    """Render header fields and data entries as a data segment, `K=V;...;CP=&&K=V;...&&`."""
    head = "".join(f"{key}={value};" for key, value in header)
    data = ";".join(f"{key}={value}" for key, value in cp)
    return f"{head}CP=&&{data}&&"


def needs_ack(frame: Frame) -> bool:
    """Whether the receiver must answer `frame` with a 9014 data response."""
    # Responses (CN 9xxx) are never answered, and without a QN there is nothing to answer to.
    return frame.ack and frame.qn is not None and not (frame.cn or "").startswith("9")


def build_ack(frame: Frame, crc_mode: CrcMode = "hj212") -> bytes:
    """Build the 9014 data-response frame for `frame` (ST=91, same QN/PW/MN, Flag of its version)."""
    header: list[tuple[str, str]] = []
    if frame.qn is not None:
        header.append(("QN", frame.qn))
    header += [("ST", "91"), ("CN", "9014")]
    if frame.pw is not None:
        header.append(("PW", frame.pw))
    if frame.mn is not None:
        header.append(("MN", frame.mn))
    # Same version bits; a response asks for no response itself and is never split.
    header.append(("Flag", str(frame.version << 2)))
    cp = [(key, value) for key, value in (("QN", frame.qn), ("CN", frame.cn)) if value is not None]
    return encode_frame(format_segment(header, cp), crc_mode)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def datatime_to_utc_ms(text: str, tz: tzinfo) -> int:
    """Convert a station-local DataTime (`yyyyMMddHHmmss`, optionally `fff` ms) in `tz` to UTC ms."""
    if len(text) not in (14, 17) or not (text.isascii() and text.isdigit()):
        raise Hj212TimeError(f"DataTime {text[:20]!r} is not yyyyMMddHHmmss[fff]")
    try:
        local = datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            int(text[14:17] or 0) * 1000,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise Hj212TimeError(f"DataTime {text!r} is not a valid time: {exc}") from exc
    return (local - _EPOCH) // _MS
