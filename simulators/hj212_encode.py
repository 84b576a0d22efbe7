"""HJ 212 frame encoding: header fields and data items in, `##len…CRC\\r\\n` frames out (four CRC modes)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, Literal

CrcMode = Literal["hj212", "modbus_be", "modbus_le", "none"]
CRC_MODES: Final[tuple[CrcMode, ...]] = ("hj212", "modbus_be", "modbus_le", "none")
# What a station without a CRC routine puts in the field: a fixed placeholder.
NO_CRC: Final = "0000"
FLAG_2017: Final = 4
FLAG_ACK: Final = 1
_REPLY_FIELD: Final = re.compile(r"(QN|ST|CN|PW|MN|Flag)=([^;&]*)")


def _reflected_shifts(reg: int) -> int:
    for _ in range(8):
        reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def crc_hj212(data: bytes) -> int:
    """HJ 212-2017 Annex A CRC: per byte reg = (reg >> 8) ^ byte, 8 reflected shifts by 0xA001."""
    reg = 0xFFFF
    for byte in data:
        reg = _reflected_shifts((reg >> 8) ^ byte)
    return reg


def crc_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: per byte reg ^= byte, 8 reflected shifts by 0xA001; init 0xFFFF."""
    reg = 0xFFFF
    for byte in data:
        reg = _reflected_shifts(reg ^ byte)
    return reg


def crc_text(segment: bytes, mode: CrcMode) -> str:
    """Return the 4 hex digits a device in `mode` appends to `segment`."""
    if mode == "hj212":
        return f"{crc_hj212(segment):04X}"
    if mode == "modbus_be":
        return f"{crc_modbus(segment):04X}"
    if mode == "modbus_le":
        crc = crc_modbus(segment)
        return f"{crc & 0xFF:02X}{crc >> 8:02X}"
    return NO_CRC


def frame(segment: str, crc_mode: CrcMode = "hj212") -> bytes:
    """Wrap a data segment (`QN=…&&`) as `##` + byte length + segment + CRC + CR LF."""
    data = segment.encode("utf-8")
    if len(data) > 9999:
        raise ValueError(f"a data segment of {len(data)} bytes does not fit the 4-digit length field")
    return b"##%04d" % len(data) + data + crc_text(data, crc_mode).encode("ascii") + b"\r\n"


def qn(local: datetime) -> str:
    """Format a request number: station-local yyyyMMddHHmmssSSS."""
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def datatime(local: datetime) -> str:
    """Format a DataTime: station-local yyyyMMddHHmmss."""
    return local.strftime("%Y%m%d%H%M%S")


def number(value: float, decimals: int) -> str:
    """Format a measured value the way stations do: fixed decimals, no exponent."""
    return f"{value:.{decimals}f}"


def data_area(data_time: str, items: Sequence[tuple[str, Mapping[str, str]]]) -> str:
    """Return `DataTime=…;code-Suffix=v,code-Flag=N;…` for (code, {suffix: value}) items."""
    parts = [f"DataTime={data_time}"]
    for code, fields in items:
        parts.append(",".join(f"{code}-{suffix}={value}" for suffix, value in fields.items()))
    return ";".join(parts)


def segment(*, qn: str, st: str, cn: str, pw: str, mn: str, flag: int, cp: str) -> str:
    """Return the data segment `QN=…;ST=…;CN=…;PW=…;MN=…;Flag=…;CP=&&…&&`."""
    return f"QN={qn};ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};CP=&&{cp}&&"


def reply_fields(line: bytes) -> dict[str, str]:
    """Return the header fields of a platform reply (QN, ST, CN, PW, MN, Flag) found in `line`."""
    text = line.decode("utf-8", errors="replace")
    head = text.split("CP=", 1)[0]
    return dict(_REPLY_FIELD.findall(head))


def reply_valid(line: bytes, crc_mode: CrcMode) -> bool:
    """Return True when a reply line (without CR LF) has a matching length field and CRC."""
    if len(line) < 10 or line[:2] != b"##" or not line[2:6].isdigit():
        return False
    body = line[6:-4]
    if int(line[2:6]) != len(body):
        return False
    if crc_mode == "none":
        return True
    return line[-4:].decode("ascii", errors="replace").upper() == crc_text(body, crc_mode)
