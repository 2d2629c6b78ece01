"""JSON Schema validation of a manifest, with jsonschema's errors rewritten as sentences."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

from reconciler.manifest.loader import SCHEMA_NAME, schema_sha256
from reconciler.manifest.yaml_nodes import Document, ManifestPath
from reconciler.resources import load_schema

TYPE_CHECKING = False  # typing is not imported at run time (a manifest is checked first)
if TYPE_CHECKING:
    from typing import Any

    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = ["SCHEMA_NAME", "check_schema"]


#: What each pattern of the schema means, for the error message.
_PATTERNS = {
    "^[A-Za-z0-9][A-Za-z0-9._-]*$": (
        "environment name",
        "start with a letter or digit, then use only letters, digits, '.', '_' or '-'",
    ),
    "^[a-z0-9._-]+$": ("kernel name", "use only lowercase letters, digits, '.', '_' or '-'"),
    "^[A-Za-z0-9._*?!\\[\\]-]+$": (
        "protect pattern",
        "use only letters, digits, '.', '_', '-' and the glob characters * ? [ ] !",
    ),
    "^[0-9]+(\\.[0-9]+){0,2}$": ("Python version", 'write X.Y or X.Y.Z, e.g. "3.11"'),
}

_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "null": "an empty value",
}


def check_schema(document: Document) -> None:
    """Report every schema violation of ``document`` at its line and column.

    A manifest the generated check (:mod:`reconciler.manifest.schema_fast`) finds valid
    has none: jsonschema, and its import, are needed only to word the errors of one
    that it refuses (it is stricter than jsonschema, never looser).
    """
    if _fast_valid(document.data):
        return
    unreadable = set(document.invalid)  # values YAML reading already reported
    data: Any = document.data
    for error in _validator().iter_errors(data):
        path: ManifestPath = tuple(error.absolute_path)
        if any(path[:end] in unreadable for end in range(len(path) + 1)):
            continue
        for where, message, at_key in _describe(error, document):
            document.report(where, message, key=at_key)


def _fast_valid(data: object) -> bool:
    from reconciler.manifest import schema_fast

    if schema_sha256() != schema_fast.SCHEMA_SHA256:
        return False  # generated from another schema: jsonschema decides
    try:
        schema_fast.validate(data)
    except schema_fast.JsonSchemaValueException:
        return False
    return True


@cache
def _validator() -> Validator:
    import jsonschema  # heavy: only when a manifest is validated

    return jsonschema.Draft202012Validator(load_schema(SCHEMA_NAME))


def _describe(
    error: ValidationError, document: Document
) -> Iterator[tuple[ManifestPath, str, bool]]:
    path: ManifestPath = tuple(error.absolute_path)
    keyword, schema, instance = error.validator, error.schema, error.instance
    if not isinstance(schema, dict):
        yield path, error.message, False
    elif keyword == "additionalProperties" and isinstance(instance, dict):
        allowed = list(schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                yield (*path, key), f"unknown key {key!r} (allowed: {', '.join(allowed)})", True
    elif keyword == "required" and isinstance(instance, dict):
        required: Any = error.validator_value  # the schema's list of names
        for key in required:
            if key not in instance:
                yield path, f"missing required key {key!r}", False
    elif keyword == "type":
        yield path, _wrong_type(schema, instance, document.sources.get(path, "")), False
    elif keyword == "const" and path == ("version",):
        if isinstance(instance, str):
            message = f"expected the number 1, got the string {instance!r}; write 'version: 1'"
        else:
            written = document.sources.get(path, repr(instance))
            message = f"unsupported manifest version {written}; this reconciler reads version 1"
        yield path, message, False
    elif keyword == "enum":
        allowed_values: Any = error.validator_value  # the schema's list of values
        choices = ", ".join(str(choice) for choice in allowed_values)
        yield path, f"expected one of {choices}, got {instance!r}", False
    elif keyword == "pattern" and "propertyNames" in error.schema_path:
        noun, rule = _PATTERNS.get(str(error.validator_value), ("name", "invalid"))
        yield (*path, str(instance)), f"invalid {noun} {instance!r}: {rule}", True
    elif keyword == "pattern":
        noun, rule = _PATTERNS.get(str(error.validator_value), ("value", error.message))
        yield path, f"invalid {noun} {instance!r}: {rule}", False
    elif keyword == "minLength":
        yield path, "must not be empty", False
    elif keyword in ("minProperties", "maxProperties") and path[-1:] == ("create",):
        message = "give exactly one of 'python' (a new conda environment) or 'venv' (a new venv)"
        yield path, message, False
    else:
        yield path, error.message, False


def _wrong_type(schema: dict[str, Any], instance: object, written: str) -> str:
    expected = schema.get("type")
    names = expected if isinstance(expected, list) else [expected]
    phrase = " or ".join(_TYPES.get(str(name), str(name)) for name in names)
    if expected == "array":
        items = _resolve(schema.get("items"))
        if items.get("type") == "string":
            phrase = "a list of strings"
    got = _kind(instance)
    if (
        expected == "string"
        and isinstance(instance, (int, float))
        and not isinstance(instance, bool)
    ):
        return f'expected a string, got {got}; quote it: "{written}"'
    return f"expected {phrase}, got {got}"


def _resolve(schema: object) -> dict[str, Any]:
    """Follow a local ``$ref`` into ``$defs`` (the only kind the schema uses)."""
    if not isinstance(schema, dict):
        return {}
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        target = load_schema(SCHEMA_NAME)["$defs"].get(reference[len("#/$defs/") :], {})
        return target if isinstance(target, dict) else {}
    return schema


def _kind(value: object) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"
