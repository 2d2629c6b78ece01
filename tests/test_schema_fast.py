"""The generated manifest check (reconciler/manifest/schema_fast.py) against jsonschema.

The loader skips jsonschema for a manifest the generated code finds valid, so the one
property that matters is: whatever it calls valid, jsonschema calls valid. It is tested
on every manifest of the repository, on mutations of each (every value replaced by one
of another kind, every key dropped, an unknown key in every mapping) and on random
documents built from the schema's own keys. The committed module must be what the
generator writes from the schema today.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.manifest import schema_check, schema_fast
from reconciler.manifest.yaml_nodes import read_document
from tests.support import schema_code
from tests.support.manifests import REPO, load_in_a_new_process

SCHEMA = json.loads(schema_code.SCHEMA.read_text(encoding="utf-8"))
AUTHORITY = jsonschema.Draft202012Validator(SCHEMA)
#: Values of every kind a YAML manifest can hold, and strings the patterns refuse.
OTHERS: tuple[Any, ...] = (
    None, True, False, 0, 1, 2, 1.0, 1.5, -1, "", "x", "3.11", "a b", "A", "ok\n", "é",
    "[x]", "*", [], ["x"], [1], [""], {}, {"x": 1}, {"prefix": "/p"}, {"python": "3.11"},
    {"venv": "/usr/bin/python3"}, {"python": "3", "venv": "/v"},
)  # fmt: skip


def fast_valid(data: object) -> bool:
    try:
        schema_fast.validate(data)
    except schema_fast.JsonSchemaValueException:
        return False
    return True


def documents() -> list[tuple[str, object]]:
    """Every manifest in the repository, as the loader reads it (scenarios' included)."""
    found: list[tuple[str, object]] = []
    paths = sorted((REPO / "manifests").rglob("*.yaml"))
    for path in paths:
        try:
            data = read_document(path.read_text(encoding="utf-8"), str(path)).data
        except ManifestError:
            continue  # refused before the schema (anchors, tags)
        if data is not None:
            found.append((str(path.relative_to(REPO)), data))
    for path in sorted((REPO / "tests" / "scenarios").glob("*.yaml")):
        scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(scenario, dict) and isinstance(scenario.get("manifest"), dict):
            found.append((path.name, {"version": 1, **scenario["manifest"]}))
    return found


DOCUMENTS = documents()


def paths(value: object, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from paths(sub, (*at, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from paths(sub, (*at, index))


def replaced(data: object, at: tuple[Any, ...], new: object) -> object:
    out = copy.deepcopy(data)
    if not at:
        return new
    parent: Any = out
    for part in at[:-1]:
        parent = parent[part]
    parent[at[-1]] = new
    return out


def mutations(data: object) -> Iterator[object]:
    for at in paths(data):
        for other in OTHERS:
            yield replaced(data, at, other)
        if at:
            out: Any = copy.deepcopy(data)
            parent: Any = out
            for part in at[:-1]:
                parent = parent[part]
            del parent[at[-1]]
            yield out
    for at in paths(data):
        target: Any = data
        for part in at:
            target = target[part]
        if isinstance(target, dict):
            for key in ("unknown", "Prefix", "kernel", "create", "env-9", "-bad", ""):
                if key not in target:
                    yield replaced(data, at, {**target, key: "x"})


def test_the_repository_has_manifests_of_both_verdicts() -> None:
    verdicts = {AUTHORITY.is_valid(data) for _, data in DOCUMENTS}
    assert verdicts == {True, False}
    assert len(DOCUMENTS) > 25


@pytest.mark.parametrize(("name", "data"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_same_verdict_as_jsonschema_on_every_manifest(name: str, data: object) -> None:
    assert fast_valid(data) == AUTHORITY.is_valid(data), name


@pytest.mark.parametrize(("name", "data"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_never_valid_where_jsonschema_refuses_a_mutation(name: str, data: object) -> None:
    looser = []
    agreed = 0
    for mutated in mutations(data):
        fast, authority = fast_valid(mutated), AUTHORITY.is_valid(mutated)
        if fast and not authority:
            looser.append(mutated)
        agreed += fast == authority
    assert looser == [], f"{name}: the generated check accepts what jsonschema refuses"
    assert agreed > 0


_KEYS = st.sampled_from(
    [
        "version", "protect", "defaults", "channels", "pip", "index_url", "extra_index_urls",
        "find_links", "no_index", "installer", "all", "conda", "environments", "prefix",
        "create", "python", "venv", "kernel", "name", "display_name", "dl", "base", "x",
    ]
)  # fmt: skip
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([1.0, 0.5]),
    st.sampled_from(["", "uv", "pip", "auto", "3.11", "/opt/conda", "numpy>=1", "a\n", "Z*"]),
    st.text(max_size=4),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=5), st.sampled_from([1, True, 1.0, "1"]))
def test_never_valid_where_jsonschema_refuses_random_documents(
    body: dict[str, Any], version: object
) -> None:
    data = {"version": version, **body}
    if fast_valid(data):
        assert AUTHORITY.is_valid(data), data


def test_the_committed_module_is_what_the_schema_generates() -> None:
    assert schema_code.MODULE.read_text(encoding="utf-8") == schema_code.generate(), (
        "regenerate it: python -m tests.support.schema_code"
    )


def test_a_module_of_another_schema_is_not_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = "version: 1\nenvironments: {e: {prefix: /opt/e}}\n"
    document = read_document(text, "m.yaml")
    assert schema_check._fast_valid(document.data)
    monkeypatch.setattr(schema_fast, "SCHEMA_SHA256", "0" * 64)
    assert not schema_check._fast_valid(document.data)
    # The verdict then comes from jsonschema, the same.
    schema_check.check_schema(document)
    assert document.problems == []


def test_a_valid_manifest_loads_without_importing_jsonschema(tmp_path: Path) -> None:
    """What a plan of a manifest just edited pays: no jsonschema import for a valid one."""
    valid = tmp_path / "valid.yaml"
    valid.write_text("version: 1\nprotect: ['sagemaker*']\nenvironments: {e: {prefix: /opt/e}}\n")
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("version: 1\nenvironments: {e: {prefix: /opt/e, pip: numpy}}\n")
    for path, expected in ((valid, ["loaded", "False"]), (invalid, None)):
        lines = load_in_a_new_process(path, "jsonschema")
        if expected is not None:
            assert lines == expected
        else:
            assert "environments.e.pip: expected a list of strings, got a string" in lines[0]
            assert lines[-1] == "True"
