"""Line protocol encoding: tag escaping, schema, and readings that cannot be represented."""

from __future__ import annotations

import pytest

from cloud.store.lineprotocol import LineProtocolStore, encode, escape_tag
from gateway.readings import Quality, Reading, Reason


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a b", "a\\ b"),
        ("a,b", "a\\,b"),
        ("k=v", "k\\=v"),
        ("back\\slash", "back\\\\slash"),
        ("trail\\", "trail\\\\"),
        ("井盖 7", "井盖\\ 7"),
    ],
)
def test_escape_tag_follows_the_spec(raw: str, escaped: str) -> None:
    """Spaces, commas, equals signs and backslashes in tag values are escaped with a backslash."""
    assert escape_tag(raw) == escaped


def test_encode_writes_the_documented_schema() -> None:
    """A reading becomes `reading` with sorted tags, one float field and a millisecond timestamp."""
    good = Reading("pump 7,a=b", "pm25", 12.5, "ug/m3", 1_718_000_000_123)
    assert encode(good) == (
        "reading,device=pump\\ 7\\,a\\=b,quality=good,quantity=pm25,unit=ug/m3 value=12.5 1718000000123"
    )
    suspect = Reading("d", "noise", 3, "dB(A)", 5, Quality.SUSPECT, Reason.STALE)
    assert encode(suspect) == "reading,device=d,quality=suspect,quantity=noise,reason=stale,unit=dB(A) value=3.0 5"


def test_unrepresentable_readings_are_counted_not_sent() -> None:
    """Newlines in tags, empty tags and non-finite values are counted and left out of the lines."""
    store = LineProtocolStore("http://127.0.0.1:9", bucket="b")
    try:
        lines = store.lines(
            [
                Reading("a\nb", "pm25", 1.0, "ug/m3", 1),
                Reading("a\nb", "pm25", 2.0, "ug/m3", 2),
                Reading("", "pm25", 1.0, "ug/m3", 1),
                Reading("d", "pm25", float("nan"), "ug/m3", 1),
                Reading("d", "pm25", 4.0, "ug/m3", 1),
            ]
        )
    finally:
        store.close()
    assert lines == ["reading,device=d,quality=good,quantity=pm25,unit=ug/m3 value=4.0 1"]
    assert store.stats == {"unencodable": 3, "not_finite": 1}
    assert encode(Reading("a\nb", "pm25", 1.0, "ug/m3", 1)) is None
