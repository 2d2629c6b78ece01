"""The manifest: raw YAML -> schema check (all errors, with line:col) -> frozen model."""

from __future__ import annotations

from reconciler.manifest.loader import (
    MAX_MANIFEST_BYTES,
    ValidationMemo,
    load_manifest,
    load_manifest_text,
    schema_key,
)
from reconciler.manifest.model import (
    CondaRequest,
    Environment,
    Manifest,
    PipRequest,
    PipSettings,
    select_environments,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reconciler.manifest.optional import Create, Kernel

__all__ = [
    "MAX_MANIFEST_BYTES",
    "CondaRequest",
    "Create",
    "Environment",
    "Kernel",
    "Manifest",
    "PipRequest",
    "PipSettings",
    "ValidationMemo",
    "load_manifest",
    "load_manifest_text",
    "schema_key",
    "select_environments",
]


def __getattr__(name: str) -> Any:
    """``Create`` and ``Kernel`` on first use (see :mod:`reconciler.manifest.optional`)."""
    if name in ("Create", "Kernel"):
        from reconciler.manifest import optional

        return getattr(optional, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
