"""The simulators' error tree: SimulatorError, with PortError for pseudo-terminal and link trouble."""

from __future__ import annotations


class SimulatorError(Exception):
    """A simulator could not be set up or run as asked."""


class PortError(SimulatorError):
    """A pseudo-terminal pair or its symlink could not be created, re-pointed or used."""


class FaultSpecError(SimulatorError, ValueError):
    """A fault specification like `garbage=0.01,checksum=0.02` names an unknown fault or a bad rate."""


class ScenarioError(SimulatorError, ValueError):
    """A scenario name is unknown or a value source is configured out of range."""
