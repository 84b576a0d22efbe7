"""Tests of the HJ 212 station: CRC modes, byte lengths, CN 2011/2051 content, local DataTime, pty and TCP."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulators.clock import ScenarioClock
from simulators.hj212 import DEFAULT_CODES, Hj212Simulator, Hj212Station
from simulators.hj212_encode import (
    CRC_MODES,
    CrcMode,
    crc_hj212,
    crc_modbus,
    crc_text,
    frame,
    reply_fields,
    reply_valid,
    segment,
)
from simulators.scenario import scenario

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
# 2024-06-01 07:59:55 UTC is 15:59:55 in Asia/Shanghai.
START = datetime(2024, 6, 1, 7, 59, 55, tzinfo=UTC)


def wake(future: asyncio.Future[None]) -> None:
    """Complete `future` once; the loop calls this while the descriptor stays readable."""
    if not future.done():
        future.set_result(None)


def crc_reference(data: bytes) -> int:
    """The HJ 212 Annex A CRC written out bit by bit, independent of the simulator's helper."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            lsb = reg & 1
            reg >>= 1
            if lsb:
                reg ^= 0xA001
    return reg


def split_frame(line: bytes) -> tuple[int, bytes, str]:
    """Return (length field, data segment, CRC text) of a frame without its CR LF."""
    return int(line[2:6]), line[6:-4], line[-4:].decode()


def items_of(line: bytes) -> dict[str, str]:
    """Return the `key=value` entries of a frame's CP data area."""
    cp = line.decode().split("CP=&&", 1)[1].rsplit("&&", 1)[0]
    return dict(entry.split("=", 1) for part in cp.split(";") for entry in part.split(","))


async def read_lines(path: Path, count: int) -> list[bytes]:
    """Open `path` like a serial reader and return the first `count` lines without CR LF."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    buffer = b""
    try:
        async with asyncio.timeout(15.0):
            while buffer.count(b"\r\n") < count:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, wake, ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
                buffer += os.read(fd, 65536)
    finally:
        os.close(fd)
    return buffer.split(b"\r\n")[:count]


def test_crc_check_values() -> None:
    """The HJ 212 CRC gives 2F80 for "123456789" (CRC-16/MODBUS gives 4B37), FFFF empty, 7080 for "A"."""
    assert crc_hj212(b"123456789") == 0x2F80 == crc_reference(b"123456789")
    assert crc_modbus(b"123456789") == 0x4B37
    assert crc_hj212(b"") == 0xFFFF
    assert crc_hj212(b"A") == 0x7080
    assert crc_text(b"123456789", "modbus_le") == "374B"


def test_every_corpus_frame_passes_and_nonstandard_ones_pass_only_in_their_mode() -> None:
    """Real frames: all of frames.tsv pass in hj212 mode; frames-nonstandard.tsv pass in their listed mode."""
    standard = (CORPUS / "hj212" / "frames.tsv").read_text(encoding="utf-8").splitlines()
    assert len(standard) >= 30
    for row in standard:
        line = row.split("\t")[0].encode()
        assert reply_valid(line, "hj212"), row
        assert crc_hj212(line[6:-4]) == crc_reference(line[6:-4])
    modes = {"MODBUS_BE": "modbus_be", "MODBUS_LE": "modbus_le", "BAD": "none"}
    for row in (CORPUS / "hj212" / "frames-nonstandard.tsv").read_text(encoding="utf-8").splitlines():
        text, _, kind = row.split("\t")
        line = text.encode()
        assert not reply_valid(line, "hj212"), row
        assert reply_valid(line, modes[kind]), row  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", CRC_MODES)
def test_station_frames_have_byte_length_and_crc_of_their_mode(mode: CrcMode) -> None:
    """Real-time and minute frames carry the UTF-8 byte length and the CRC of the selected mode."""
    station = Hj212Station(crc_mode=mode, mn="测试站0001")
    clock = ScenarioClock.from_datetime(START)
    for t in range(6):
        station.sample(float(t))
    frames = [station.realtime(clock.ms(5.0)), station.minute(clock.ms(5.0))]
    for raw in frames:
        assert raw is not None
        assert raw.endswith(b"\r\n")
        line = raw[:-2]
        length, seg, crc = split_frame(line)
        assert length == len(seg) != len(seg.decode())  # the Chinese MN makes bytes ≠ characters
        expected = {
            "hj212": f"{crc_reference(seg):04X}",
            "modbus_be": f"{crc_modbus(seg):04X}",
            "modbus_le": f"{crc_modbus(seg) & 0xFF:02X}{crc_modbus(seg) >> 8:02X}",
            "none": "0000",
        }[mode]
        assert crc == expected


def test_realtime_frame_content_follows_the_profile_and_local_time() -> None:
    """CN 2011 carries every code with -Rtd and -Flag=N, Flag=5 when acks are asked, DataTime in UTC+8."""
    station = Hj212Station(ack=True, values=scenario("pm25-episode", begin=0, duration=30))
    clock = ScenarioClock.from_datetime(START)
    station.sample(10.0)
    line = station.realtime(clock.ms(10.0))[:-2]
    fields = reply_fields(line)
    assert fields["CN"] == "2011"
    assert fields["Flag"] == "5"
    assert fields["QN"] == "20240601160005000"
    items = items_of(line)
    assert items["DataTime"] == "20240601160005"
    for code in DEFAULT_CODES:
        assert float(items[f"{code}-Rtd"]) >= 0
        assert items[f"{code}-Flag"] == "N"
    # Ten seconds into a 10 s rise from 35 to 250 ug/m3 the episode is at its peak.
    assert float(items["a34004-Rtd"]) == pytest.approx(250.0, abs=0.1)


def test_minute_frame_summarises_the_samples_of_that_minute() -> None:
    """CN 2051 carries Avg/Min/Max of the per-second samples of the closed minute, stamped at its start."""
    ramp = scenario("gas-leak", begin=0, duration=60)  # not a station quantity: baseline values only
    station = Hj212Station(values=ramp, codes=("a34004", "a21005"))
    clock = ScenarioClock.from_datetime(datetime(2024, 6, 1, 8, 0, 0, tzinfo=UTC))
    for t in range(60):
        station.sample(float(t))
    line = station.minute(clock.ms(60.0))
    assert line is not None
    items = items_of(line[:-2])
    assert items["DataTime"] == "20240601160000"
    assert reply_fields(line)["CN"] == "2051"
    samples = [ramp.value("pm2_5", float(t)) for t in range(60)]
    assert float(items["a34004-Avg"]) == pytest.approx(sum(samples) / 60, abs=0.051)
    assert float(items["a34004-Min"]) == pytest.approx(min(samples), abs=0.051)
    assert float(items["a34004-Max"]) == pytest.approx(max(samples), abs=0.051)
    assert items["a21005-Flag"] == "N"
    assert station.minute(clock.ms(120.0)) is None


@pytest.mark.integration
async def test_station_over_a_pty_sends_realtime_and_minute_frames(tmp_path: Path) -> None:
    """Over a real pty at 60x, frames pass length and CRC checks and a CN 2051 follows the minute."""
    clock = ScenarioClock.from_datetime(START, speed=60.0)
    async with Hj212Simulator(link=tmp_path / "hj0", rtd_interval=2, clock=clock) as sim:
        lines = await read_lines(sim.path, 8)
    assert all(reply_valid(line, "hj212") for line in lines)
    commands = [reply_fields(line)["CN"] for line in lines]
    assert "2051" in commands
    assert commands.count("2011") >= 5
    times = [items_of(line)["DataTime"] for line in lines if reply_fields(line)["CN"] == "2011"]
    assert times == sorted(times)


@pytest.mark.integration
async def test_station_dials_a_platform_and_counts_9014_acks(tmp_path: Path) -> None:
    """Over TCP the station asks for acks (Flag=5), counts a CN 9014 reply, and keeps sending without one."""
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def platform(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = True
        while line := await reader.readline():
            await received.put(line)
            if first:
                qn = reply_fields(line)["QN"]
                seg = segment(qn=qn, st="91", cn="9014", pw="123456", mn="GW0101A0000001", flag=4, cp="")
                writer.write(frame(seg))
                await writer.drain()
                first = False
        writer.close()

    server = await asyncio.start_server(platform, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = ScenarioClock.from_datetime(START, speed=20.0)
    try:
        station = Hj212Station(ack=True)
        async with Hj212Simulator(host="127.0.0.1", port=port, rtd_interval=1, clock=clock, station=station) as sim:
            lines = [await asyncio.wait_for(received.get(), 10) for _ in range(4)]
            async with asyncio.timeout(10):
                # A counter, not an event: poll it under a deadline.
                while sim.replies.acks < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert sim.replies.bad == 0
    finally:
        server.close()
        await server.wait_closed()
    assert all(reply_valid(line.rstrip(b"\r\n"), "hj212") for line in lines)
    assert all(reply_fields(line)["Flag"] == "5" for line in lines)
