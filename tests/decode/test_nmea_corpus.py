"""The NMEA decoder replayed over gpsd's 53 real receiver logs, checked against gpsd's own `.chk` output."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest

from edge_agent.decode.base import Sample
from edge_agent.decode.nmea import NmeaDecoder

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
GNSS = CORPUS / "gnss"
LOGS = sorted(GNSS.glob("*.log"))
DAY_MS = 86_400_000

# gpsd TPV positions we do not reproduce, each for a stated reason: (log, UTC time of day) -> reason.
# The test fails if any of them starts matching, so the list cannot go stale.
GPSD_DISAGREEMENTS = {
    ("ericsson-gru04-02-70sec.log", "21:37:13.000"): "gpsd reports the proprietary $PERC,GPavp surveyed "
    "average position of this timing receiver; we decode only standard fix sentences",
    ("ericsson-gru04-02-70sec.log", "21:38:13.000"): "same $PERC,GPavp average position as above",
    ("garmin-geko201.log", "21:43:50.000"): "GGA quality 8 (simulator) with RMC status V: gpsd reports the "
    "simulated position, our rule makes quality 8 invalid",
    ("mtk-3301.log", "08:14:34.590"): "GGA quality 0 (no fix) beside RMC status V: gpsd takes GGA "
    "coordinates whatever the quality, we ignore coordinates of no-fix sentences",
}

# Where gpsd's last SKY differs from our satellites in view, and why.
SKY_DISAGREEMENTS = {
    "skytraq.log": "gpsd drops a GSV skyview whose azimuths are all 0 (a SiRFstarII hairball check); "
    "we count the satellites the receiver lists",
}

_TIMED_FIELD = {"GGA": 1, "RMC": 1, "GNS": 1, "GLL": 5, "ZDA": 1}
_GNSSID = {0: "gps", 2: "galileo", 3: "beidou", 5: "qzss", 6: "glonass"}


@dataclass(frozen=True)
class Tpv:
    """One gpsd TPV report with a position."""

    tod_ms: int
    lat: float
    lon: float
    time_ms: int | None


@dataclass(frozen=True)
class Replay:
    """What our decoder made of one log."""

    samples: list[Sample]
    positions: dict[int, tuple[float, float]]
    counts: Counter[str]


def _tod(text: str) -> int:
    hh, mm, ss = int(text[0:2]), int(text[2:4]), int(text[4:6])
    frac = text[6:]
    ms = round(float("0" + frac) * 1000) if len(frac) > 1 else 0
    return ((hh * 60 + mm) * 60 + ss) * 1000 + ms


def _clock(tod_ms: int) -> str:
    s, ms = divmod(tod_ms, 1000)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{ms:03d}"


def _now_ms(log: Path) -> int:
    """Arrival clock for a replay: noon of the log header's `Date:`, else 2020-01-01."""
    match = re.search(rb"^# *Date:? *(\d{4})-(\d{1,2})-(\d{1,2})", log.read_bytes(), re.M)
    y, m, d = (int(x) for x in match.groups()) if match else (2020, 1, 1)
    return int(datetime(y, m, d, 12, tzinfo=UTC).timestamp() * 1000)


@cache
def gpsd_tpvs(log: Path) -> list[Tpv]:
    """Return gpsd's TPVs with lat/lon; an untimed TPV takes the time of the sentence that made it."""
    last: int | None = None
    out = []
    for line in log.with_name(log.name + ".chk").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            report = json.loads(line)
            if report.get("class") != "TPV" or "lat" not in report:
                continue
            time_ms = None
            if "time" in report:
                stamp = datetime.fromisoformat(report["time"].replace("Z", "+00:00"))
                time_ms = round(stamp.timestamp() * 1000)
            tod = time_ms % DAY_MS if time_ms is not None else last
            assert tod is not None, f"{log.name}: a TPV before any timed sentence"
            out.append(Tpv(tod, report["lat"], report["lon"], time_ms))
            continue
        fields = line.split(",")
        index = _TIMED_FIELD.get(fields[0][3:6])
        if index is not None and len(fields) > index and re.fullmatch(r"\d{6}(\.\d*)?", fields[index]):
            last = _tod(fields[index])
    return out


@cache
def gpsd_last_sky(log: Path) -> Counter[str]:
    """Count distinct satellites per constellation in gpsd's last SKY with satellites (SBAS left out)."""
    sky: Counter[str] = Counter()
    for line in log.with_name(log.name + ".chk").read_text(errors="replace").splitlines():
        if line.startswith('{"class":"SKY"') and '"satellites"' in line:
            sats = {(s["gnssid"], s["svid"]) for s in json.loads(line)["satellites"]}
            sky = Counter(_GNSSID[g] for g, _ in sats if g in _GNSSID)
    return sky


@cache
def replay(log: Path) -> Replay:
    """Feed a log (gpsd `#` header lines skipped) in 4 KiB chunks, then flush the last epoch."""
    data = b"".join(line for line in log.read_bytes().splitlines(keepends=True) if not line.startswith(b"#"))
    decoder = NmeaDecoder()
    now = _now_ms(log)
    samples: list[Sample] = []
    for i in range(0, len(data), 4096):
        samples += decoder.feed(data[i : i + 4096], now)
    samples += decoder.flush(now)
    by_ts: dict[int, dict[str, float]] = {}
    for s in samples:
        if s.ts_ms is not None:
            by_ts.setdefault(s.ts_ms, {})[s.key] = s.value
    positions = {ts: (v["latitude"], v["longitude"]) for ts, v in by_ts.items() if "latitude" in v}
    return Replay(samples, positions, decoder.stats.counts)


def test_corpus_is_complete() -> None:
    """The corpus holds the 53 logs the README lists, each with its gpsd `.chk`."""
    assert len(LOGS) == 53
    assert all(log.with_name(log.name + ".chk").is_file() for log in LOGS)


@pytest.mark.parametrize("log", LOGS, ids=[log.name for log in LOGS])
def test_positions_equal_gpsd(log: Path) -> None:
    """Every gpsd TPV position has our position at the same time of day (within 1e-6 deg), save the listed."""
    ours = replay(log)
    by_tod: dict[int, list[tuple[float, float]]] = {}
    for ts, pos in ours.positions.items():
        by_tod.setdefault(ts % DAY_MS, []).append(pos)
    unmatched = set()
    for tpv in gpsd_tpvs(log):
        candidates = by_tod.get(tpv.tod_ms, [])
        if not any(abs(a - tpv.lat) <= 1e-6 and abs(b - tpv.lon) <= 1e-6 for a, b in candidates):
            unmatched.add((log.name, _clock(tpv.tod_ms)))
    expected = {key for key in GPSD_DISAGREEMENTS if key[0] == log.name}
    assert unmatched == expected
    assert ours.counts["sentences"] > 0 or log.name == "skytraq-err.log"


@pytest.mark.parametrize("log", LOGS, ids=[log.name for log in LOGS])
def test_timestamps_equal_gpsd(log: Path) -> None:
    """Every full UTC time gpsd gives a position is the time of one of our position epochs (date join)."""
    ours = replay(log).positions
    for tpv in gpsd_tpvs(log):
        if tpv.time_ms is not None and (log.name, _clock(tpv.tod_ms)) not in GPSD_DISAGREEMENTS:
            assert tpv.time_ms in ours, f"{log.name}: no position at {tpv.time_ms}"


@pytest.mark.parametrize("log", LOGS, ids=[log.name for log in LOGS])
def test_no_null_island(log: Path) -> None:
    """No log ever yields the (0, 0) position that receivers print while they have no fix."""
    assert (0.0, 0.0) not in replay(log).positions.values()
    assert all(s.key not in ("latitude", "longitude") or s.value != 0.0 for s in replay(log).samples)


def _gpsd_sees_beidou(log: Path) -> bool:
    return '"gnssid":3' in log.with_name(log.name + ".chk").read_text(errors="replace")


@pytest.mark.parametrize("log", [log for log in LOGS if _gpsd_sees_beidou(log)], ids=lambda p: p.name)
def test_beidou_in_view_where_gpsd_sees_it(log: Path) -> None:
    """Every log whose gpsd SKY lists BeiDou satellites (gnssid 3) yields sats_in_view_beidou > 0."""
    values = [s.value for s in replay(log).samples if s.key == "sats_in_view_beidou"]
    assert max(values, default=0.0) > 0


def test_beidou_logs_are_the_expected_ones() -> None:
    """gpsd sees BeiDou in seven logs; the f9p log has BeiDou only in its GSA, which we count as used."""
    assert len([log for log in LOGS if _gpsd_sees_beidou(log)]) == 7
    f9p = replay(GNSS / "ublox-f9p-hpnmea.log").samples
    assert max(s.value for s in f9p if s.key == "sats_used_beidou") > 0


@pytest.mark.parametrize("log", LOGS, ids=[log.name for log in LOGS])
def test_sky_equals_gpsd_last_sky(log: Path) -> None:
    """Our last satellites-in-view per constellation equal gpsd's last SKY (distinct satellites, no SBAS)."""
    last: dict[str, int] = {}
    for s in replay(log).samples:
        if s.key.startswith("sats_in_view_") and s.value:
            last[s.key.removeprefix("sats_in_view_")] = int(s.value)
        elif s.key.startswith("sats_in_view_"):
            last.pop(s.key.removeprefix("sats_in_view_"), None)
    if log.name in SKY_DISAGREEMENTS:
        assert last != dict(gpsd_last_sky(log))
    else:
        assert last == dict(gpsd_last_sky(log))


def test_week_rollover_dates_are_clock_suspect() -> None:
    """After the 2019 GPS week rollover the GPS-320FW dates fixes 1999-08-22; those are clock_suspect."""
    log = GNSS / "gp-320fw-2019-04-07-coldboot.log"
    data = b"".join(line for line in log.read_bytes().splitlines(keepends=True) if not line.startswith(b"#"))
    now = int(datetime(2019, 4, 7, 12, tzinfo=UTC).timestamp() * 1000)
    decoder = NmeaDecoder()
    samples = decoder.feed(data, now) + decoder.flush(now)
    years = {
        (datetime.fromtimestamp(s.ts_ms / 1000, UTC).year, s.clock_suspect) for s in samples if s.ts_ms is not None
    }
    assert years == {(2019, False), (1999, True)}
    assert decoder.stats.counts["checksum"] > 0
    assert decoder.stats.counts["junk_bytes"] > 0
