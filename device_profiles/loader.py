"""Load device profiles from YAML files, validating each once and naming the key path of any error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from device_profiles.schema import Profile

BUNDLED_DIR = Path(__file__).resolve().parent


class ProfileError(ValueError):
    """A profile file is missing, unreadable or invalid; the message names the file and key path."""


def format_loc(loc: Sequence[int | str]) -> str:
    """Render a pydantic error location as a key path: `read.modbus.registers[2].type`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    """Render every error of `exc` on its own line, prefixed with `source` and the key path."""
    lines = []
    for err in exc.errors():
        # Tagged unions add the tag name to the path; it is not a key the user wrote.
        loc = [p for p in err["loc"] if p not in ("threshold", "rate", "no_data", "geofence")]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {format_loc(loc)}: {msg}")
    return "\n".join(lines)


def parse_profile(data: object, source: str) -> Profile:
    """Validate one profile document; raise ProfileError naming `source` and the key path."""
    if not isinstance(data, Mapping):
        raise ProfileError(f"{source}: a profile is a mapping of keys, not {type(data).__name__}")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(source, exc)) from exc


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file; its `name` must match the file name."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc}") from exc
    profile = parse_profile(data, str(path))
    if profile.name != path.stem:
        raise ProfileError(f"{path}: name: {profile.name!r} must match the file name {path.stem!r}")
    return profile


def profile_files(directory: Path) -> list[Path]:
    """Return the profile files of a directory in name order."""
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_profiles(directories: Iterable[Path] = (BUNDLED_DIR,)) -> dict[str, Profile]:
    """Load every profile of the given directories; later directories override earlier names."""
    profiles: dict[str, Profile] = {}
    errors: list[str] = []
    for directory in directories:
        if not directory.is_dir():
            raise ProfileError(f"{directory}: not a directory of profiles")
        for path in profile_files(directory):
            try:
                profile = load_profile(path)
            except ProfileError as exc:
                errors.append(str(exc))
                continue
            profiles[profile.name] = profile
    if errors:
        raise ProfileError("\n".join(errors))
    return profiles
