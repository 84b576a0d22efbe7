"""Jittered, capped exponential backoff for the ingest reconnect loop: attempts in, delays out."""

from __future__ import annotations

import random


class Backoff:
    """Delays doubling from `initial` to `cap`, each drawn from the upper half of its ceiling."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        """Return the delay before the next attempt."""
        ceiling = min(self.cap, self.initial * 2.0 ** min(self._attempt, 32))
        self._attempt += 1
        # Half fixed, half random: workers restarted together spread out, yet never retry at once.
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def reset(self) -> None:
        """Start over after a session that made progress."""
        self._attempt = 0
