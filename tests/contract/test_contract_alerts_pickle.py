"""Alerts cross process boundaries (ingest's decoder processes) by pickle and come back equal."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.alerts import AlertEvent, AlertState, Location

text = st.text(max_size=12)
maybe_float = st.none() | st.floats(allow_nan=False)
locations = st.none() | st.builds(Location, maybe_float, maybe_float, st.none() | text, st.none() | text)
alerts = st.builds(
    AlertEvent,
    text,
    text,
    text,
    st.sampled_from(AlertState),
    st.integers(0, 9),
    st.integers(0, 2**62),
    st.none() | text,
    maybe_float,
    maybe_float,
    locations,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(alerts, max_size=5))
def test_alerts_pickle_round_trip_equal_with_their_types(events: list[AlertEvent]) -> None:
    """Every field, the state's enum type and the location survive a pickle round trip at every protocol."""
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(events, protocol=protocol))
        assert back == events
        assert all(type(a.state) is AlertState for a in back)
        assert all(a.location is None or type(a.location) is Location for a in back)
