"""The edge rule engine: readings and ticks in, alert events out (see engine.RuleEngine)."""

from edge_agent.rules.engine import SNAPSHOT_VERSION, Rule, RuleEngine
from edge_agent.rules.errors import RulesError, SnapshotError

__all__ = ["SNAPSHOT_VERSION", "Rule", "RuleEngine", "RulesError", "SnapshotError"]
