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
    Create,
    Environment,
    Kernel,
    Manifest,
    PipRequest,
    PipSettings,
    select_environments,
)

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
