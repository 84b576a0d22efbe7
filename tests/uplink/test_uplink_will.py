"""The Last Will: an uplink process killed abruptly leaves a retained offline status behind."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from gateway import topics
from gateway.contract import decode_envelope
from tests.support.mosquitto import Collector, Mosquitto

pytestmark = pytest.mark.integration

AGENT = """
import asyncio, sys
from pathlib import Path
from edge_agent.buffer import DurableBuffer
from edge_agent.uplink import Uplink, UplinkSettings

class Health:
    def health(self):
        return {"config_version": "will-test"}

async def main():
    with DurableBuffer(Path(sys.argv[3]), gateway="gw-a", max_bytes=1 << 24) as buf:
        settings = UplinkSettings(host=sys.argv[1], port=int(sys.argv[2]), keepalive_s=5)
        await Uplink(settings, buf, "gw-a", Health()).run()

asyncio.run(main())
"""


def states(collector: Collector) -> list[str]:
    """The status history seen: "offline" for the Will, else the heartbeat's state."""
    out = []
    for _, payload, _ in collector.messages:
        if payload == topics.OFFLINE:
            out.append("offline")
        else:
            status = decode_envelope(payload).status
            assert status is not None
            out.append(str(status["state"]))
    return out


async def test_sigkilled_agent_leaves_retained_offline(mosquitto_broker: Mosquitto, tmp_path: Path) -> None:
    """Online while the agent runs; after SIGKILL the broker publishes the retained Will "offline"."""
    async with Collector(mosquitto_broker, topics.status("gw-a")) as sub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            AGENT,
            mosquitto_broker.host,
            str(mosquitto_broker.port),
            str(tmp_path / "buffer.db"),
        )
        try:
            await sub.wait_until(lambda: states(sub)[-1:] == ["online"])
        finally:
            proc.kill()
            await proc.wait()
        await sub.wait_until(lambda: states(sub)[-1:] == ["offline"])
    async with Collector(mosquitto_broker, topics.status("gw-a"), client_id="later") as later:
        await later.wait_until(lambda: len(later.messages) == 1)
    assert later.messages == [(topics.status("gw-a"), topics.OFFLINE, True)]
