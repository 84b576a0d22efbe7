"""SIGKILL test: a child process puts, seals and acks; killed at a random moment, the buffer loses nothing."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge_agent.buffer import DurableBuffer, FsyncPolicy
from gateway.contract import decode_envelope

GW = "gw-kill"

# Reading i carries value i and ts_ms i; the child reports after each call returns (flushed).
CHILD = """
import hashlib, random, sys
from pathlib import Path
from edge_agent.buffer import DurableBuffer, FsyncPolicy
from gateway.contract import decode_envelope
from gateway.readings import Reading

path, fsync, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
buf = DurableBuffer(Path(path), gateway="gw-kill", max_bytes=1 << 30, fsync=FsyncPolicy(fsync))
n = 0
while True:
    k = rng.randint(1, 300)
    buf.put_readings([Reading("dev-1", "pm10", float(i), "ug/m3", i) for i in range(n, n + k)])
    n += k
    print("put", n, flush=True)
    if rng.random() < 0.3:
        for b in buf.next_batches(3, max_items=rng.randint(1, 400), max_bytes=1 << 20, now_ms=n):
            values = [int(r.value) for r in decode_envelope(b.payload).readings]
            print("sealed", b.seq, hashlib.sha256(b.payload).hexdigest(), values[0], values[-1], flush=True)
            if rng.random() < 0.6:
                buf.ack(b.seq)
                print("acked", b.seq, flush=True)
"""


def run_and_kill(path: Path, fsync: FsyncPolicy, seed: int, kill_after_puts: int) -> list[list[str]]:
    """Run the child until it has reported `kill_after_puts` puts, SIGKILL it, return every line it wrote."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), fsync.value, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, proc.kill)  # a safety net against a hung child, not synchronisation
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines: list[list[str]] = []
        puts = 0
        while puts < kill_after_puts:
            line = proc.stdout.readline()
            assert line, f"child ended early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.split())
            puts += lines[-1][0] == "put"
        os.kill(proc.pid, signal.SIGKILL)
        # Lines already in the pipe were written after their call returned: they are reports too.
        lines.extend(line.split() for line in proc.stdout.read().splitlines() if line.strip())
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # A line cut in half by the kill is not a report.
    return [words for words in lines if len(words) == {"put": 2, "sealed": 5, "acked": 2}.get(words[0], -1)]


@pytest.mark.integration
@pytest.mark.parametrize("fsync", [FsyncPolicy.FULL, FsyncPolicy.NORMAL])
@pytest.mark.parametrize("round_", [1, 2])
def test_sigkill_loses_nothing_and_duplicates_nothing(tmp_path: Path, fsync: FsyncPolicy, round_: int) -> None:
    """Every reading whose put returned is in the reopened buffer or in a reported ack, exactly once."""
    seed = random.SystemRandom().randrange(2**32)
    kill_after = random.Random(seed).randint(5, 120)
    lines = run_and_kill(tmp_path / "buffer.db", fsync, seed, kill_after)
    context = f"seed={seed} kill_after={kill_after} fsync={fsync}"

    reported_puts = max(int(w[1]) for w in lines if w[0] == "put")
    sealed = {int(w[1]): (w[2], int(w[3]), int(w[4])) for w in lines if w[0] == "sealed"}
    acked = {int(w[1]) for w in lines if w[0] == "acked"}

    with DurableBuffer(tmp_path / "buffer.db", gateway=GW, max_bytes=1 << 30, fsync=fsync) as buf:
        batches = buf.next_batches(10**6, max_items=500, max_bytes=1 << 20, now_ms=0)
    present_seqs = [b.seq for b in batches]
    assert present_seqs == sorted(set(present_seqs)), context

    for batch in batches:
        if batch.seq in sealed:
            assert hashlib.sha256(batch.payload).hexdigest() == sealed[batch.seq][0], context
        else:
            assert batch.seq > max(sealed, default=0), context
    assert not acked & set(present_seqs), context

    # A batch reported sealed, then neither reported acked nor present, was acked just before the kill.
    silently_acked = set(sealed) - acked - set(present_seqs)
    assert len(silently_acked) <= 1, context
    gone = [v for seq in acked | silently_acked for v in range(sealed[seq][1], sealed[seq][2] + 1)]
    present = [int(r.value) for b in batches for r in decode_envelope(b.payload).readings]

    everything = present + gone
    assert len(everything) == len(set(everything)), f"duplicated readings ({context})"
    assert set(everything) == set(range(len(everything))), f"lost or phantom readings ({context})"
    assert len(everything) >= reported_puts, f"lost readings whose put returned ({context})"
