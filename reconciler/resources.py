"""Access to the JSON Schemas shipped with the package (``schemas/`` in the source tree)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["load_schema", "schema_path"]

_PACKAGED = Path(__file__).resolve().parent / "schemas"
_SOURCE_TREE = Path(__file__).resolve().parent.parent / "schemas"


def schema_path(name: str) -> Path:
    """Path of schema ``name``: the packaged copy first, then the source tree."""
    for base in (_PACKAGED, _SOURCE_TREE):
        candidate = base / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"schema {name} is not installed with reconciler")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema ``name``."""
    with schema_path(name).open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema
