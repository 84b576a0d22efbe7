"""Rule → case category from the device profiles: a folder of profile YAML files in, the engine's RuleCategories out.

The cloud may not import `device_profiles` (dependency direction), so the profiles are read here as plain
data: only each rule's `name`, `kind`, `category` and `recovery` are looked at. The profile loader (edge
side) validates the files; this reader only refuses what it cannot use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from cloud.incidents.intake import RuleCategories

# The bundled profiles sit beside the `cloud` package in the source tree. Finding them through
# importlib.resources.files("device_profiles") would import that package, which the dependency test forbids;
# the trade-off is that an installed (non-editable) wheel must set `profiles_dir` explicitly.
DEFAULT_PROFILES_DIR: Final = Path(__file__).resolve().parents[1] / "device_profiles"
HEALTH: Final = "device_health"


class CategoriesError(ValueError):
    """A profile file cannot be read, or two profiles give one rule different categories."""


def _rules(path: Path) -> list[dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CategoriesError(f"{path}: cannot read profile: {exc}") from exc
    rules = doc.get("rules", []) if isinstance(doc, dict) else []
    if not isinstance(rules, list):
        raise CategoriesError(f"{path}: 'rules' is not a list")
    return [r for r in rules if isinstance(r, dict) and isinstance(r.get("name"), str)]


def load_categories(profiles_dir: Path | None = None) -> RuleCategories:
    """Return the rule → category mapping and the device-health rules of every profile in `profiles_dir`."""
    folder = profiles_dir or DEFAULT_PROFILES_DIR
    categories: dict[str, str] = {}
    health: set[str] = set()
    for path in sorted(folder.glob("*.yaml")):
        for rule in _rules(path):
            name = str(rule["name"])
            # no_data rules default to device_health in the profile schema.
            recovery = rule.get("recovery", HEALTH if rule.get("kind") == "no_data" else None)
            if recovery == HEALTH:
                health.add(name)
                continue
            category = rule.get("category")
            if not isinstance(category, str):
                continue
            if categories.get(name, category) != category:
                raise CategoriesError(f"{path}: rule {name!r} is {category!r} here and {categories[name]!r} elsewhere")
            categories[name] = category
    return RuleCategories(categories, frozenset(health))
