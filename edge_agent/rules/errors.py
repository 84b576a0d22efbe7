"""The rule engine's error tree: RulesError, and SnapshotError for a snapshot it cannot load."""

from __future__ import annotations


class RulesError(Exception):
    """Root of every error the rule engine raises."""


class SnapshotError(RulesError):
    """A snapshot has an unknown version or a malformed body."""
