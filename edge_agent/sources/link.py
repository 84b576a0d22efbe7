"""Link-state logging: one line when a transport goes away and one when it comes back."""

from __future__ import annotations

import logging


class LinkState:
    """Remembers whether a transport is up so that a flapping link logs once per change."""

    def __init__(self, name: str, logger: logging.Logger) -> None:
        self.name = name
        self.up: bool | None = None
        self.drops = 0
        self._log = logger

    def went_up(self) -> None:
        """Record that the transport works; log only if it was down."""
        if self.up is False:
            self._log.info("%s: back", self.name)
        self.up = True

    def went_down(self, why: object) -> None:
        """Record that the transport failed; log only the first failure of an outage."""
        if self.up is not False:
            self._log.warning("%s: lost (%s); retrying with backoff", self.name, why)
            self.drops += 1
        self.up = False
