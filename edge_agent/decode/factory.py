"""Decoder factory: a device profile in, the stream Decoder its `read.decoder` names out."""

from __future__ import annotations

from typing import TypeVar

from device_profiles.schema import Profile
from edge_agent.decode.base import Decoder

_T = TypeVar("_T")


def _section(settings: _T | None, profile: Profile) -> _T:
    """Return the decoder's settings section; the schema fills or requires it, so None is a bug."""
    if settings is None:
        raise ValueError(f"profile {profile.name!r}: no settings for decoder {profile.read.decoder!r}")
    return settings


def make_decoder(profile: Profile) -> Decoder:
    """Build a fresh decoder (with its own stats) for one device of `profile`.

    For Modbus this is the replay decoder of RTU captures; a live poller calls `plan_reads` and
    `decode_registers` from `edge_agent.decode.modbus` around its pymodbus reads instead.
    """
    read = profile.read
    # Imports are local so that a decoder module is loaded only by the profiles that use it.
    if read.decoder == "nmea":
        from edge_agent.decode.nmea import NmeaDecoder

        return NmeaDecoder(_section(read.nmea, profile))
    if read.decoder == "hj212":
        from edge_agent.decode.hj212 import Hj212Decoder

        return Hj212Decoder(_section(read.hj212, profile))
    if read.decoder == "modbus":
        from edge_agent.decode.modbus import ModbusCaptureDecoder

        return ModbusCaptureDecoder(_section(read.modbus, profile))
    from edge_agent.decode.jsonpath import JsonDecoder

    return JsonDecoder(_section(read.json_, profile))
