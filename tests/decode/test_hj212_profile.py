"""The shipped hj212 device profile validates and maps what the HJ 212 decoder emits."""

from __future__ import annotations

from device_profiles import BUNDLED_DIR, load_profile
from device_profiles.schema import Hj212Read, ThresholdRule
from edge_agent.decode.hj212 import Hj212Decoder, encode_frame

ANNEX_B = {
    "a34004": "pm2_5",
    "a34002": "pm10",
    "a21026": "so2",
    "a21004": "no2",
    "a05024": "o3",
    "a21005": "co",
    "LA": "noise_la",
    "a01001": "temperature",
    "a01002": "humidity",
    "w01018": "cod",
    "w21003": "nh3_n",
    "w01001": "ph",
}


def test_profile_loads_with_hj212_read_settings() -> None:
    """hj212.yaml loads through the validating loader with the hj212 decoder, CRC and Shanghai time."""
    profile = load_profile(BUNDLED_DIR / "hj212.yaml")
    assert (profile.read.transport, profile.read.decoder) == ("tcp", "hj212")
    assert profile.read.hj212 == Hj212Read(crc="hj212", timezone="Asia/Shanghai")


def test_profile_maps_annex_b_codes_and_their_companions() -> None:
    """Each Annex B code maps to its quantity, and its _min/_max companions to the companion quantities."""
    by_source = {m.source: m for m in load_profile(BUNDLED_DIR / "hj212.yaml").measures}
    for code, quantity in ANNEX_B.items():
        assert by_source[code].quantity == quantity
        assert by_source[f"{code}_min"].quantity == f"{quantity}_min"
        assert by_source[f"{code}_max"].quantity == f"{quantity}_max"
    assert by_source["a34004"].unit == "ug/m3"
    assert by_source["a21005"].unit == "mg/m3"
    assert len(by_source) == 3 * len(ANNEX_B)


def test_every_measure_source_is_a_key_the_decoder_emits() -> None:
    """An hourly frame and a real-time frame carrying every mapped code yield samples for every measure."""
    profile = load_profile(BUNDLED_DIR / "hj212.yaml")
    assert profile.read.hj212 is not None
    decoder = Hj212Decoder(profile.read.hj212)
    hourly = ";".join(f"{c}-Avg=1,{c}-Min=0,{c}-Max=2,{c}-Flag=N" for c in ANNEX_B)
    realtime = ";".join(f"{c}-Rtd=1,{c}-Flag=N" for c in ANNEX_B)
    keys = set()
    for cn, cp in (("2061", hourly), ("2011", realtime)):
        wire = encode_frame(f"QN=1;ST=22;CN={cn};MN=S1;Flag=4;CP=&&DataTime=20240501200000;{cp}&&")
        keys |= {s.key for s in decoder.feed(wire, 1_714_564_800_000)}
    assert {m.source for m in profile.measures} == keys


def test_default_rules_pm2_5_and_noise() -> None:
    """The shipped rules fire above 75 ug/m3 PM2.5 (GB 3095 class 2) and 60 dB(A) (GB 3096 class 2, day)."""
    rules = {r.name: r for r in load_profile(BUNDLED_DIR / "hj212.yaml").rules}
    pm, noise = rules["pm2_5_over_class2"], rules["noise_over_class2_day"]
    assert isinstance(pm, ThresholdRule)
    assert isinstance(noise, ThresholdRule)
    assert [(lv.severity, lv.above) for lv in pm.levels] == [(1, 75.0)]
    assert [(lv.severity, lv.above) for lv in noise.levels] == [(1, 60.0)]
    assert "24 h" in pm.description
