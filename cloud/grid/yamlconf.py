"""Load a YAML file into a pydantic model: a path and a model in, a validated object (or one clear error) out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def error_lines(exc: ValidationError) -> list[str]:
    """Return one 'key.path: message' line per validation error."""
    return [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()]


def read_yaml(path: Path, error: type[Exception]) -> Any:
    """Return the parsed YAML document at `path`; raise `error` naming the file on failure."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read YAML: {exc}") from exc


def load_model(path: Path, model: type[M], error: type[Exception]) -> M:
    """Read and validate a YAML file; raise `error` whose message names the file and every bad key path."""
    doc = read_yaml(path, error)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise error(f"{path}: " + "; ".join(error_lines(exc))) from exc
