"""Jittered, capped exponential backoff for the reconnect loops of edge and cloud alike."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial` up to `cap`, each drawn with full jitter in its upper half."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        """Return the delay before the next attempt."""
        ceiling: float = min(self.cap, self.initial * 2.0**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        # Half fixed, half random: retries from many gateways spread out but never collapse to zero.
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def reset(self) -> None:
        """Start over after a success."""
        self._attempt = 0
