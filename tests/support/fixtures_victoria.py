"""pytest fixtures over the VictoriaMetrics harness: a started server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.victoria import VictoriaMetrics


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """A running VictoriaMetrics (dedup 1 ms, latency offset 1 s) on a free loopback port."""
    with VictoriaMetrics(tmp_path_factory.mktemp("victoria")) as server:
        yield server
