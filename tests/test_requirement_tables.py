"""The requirement answers kept in the read cache (reconciler.plan.requirements).

Each answer (a parse, a specifier check, a marker) must be what ``packaging`` itself
says, whether computed now or read back from a saved cache; a damaged row is
parsed again, and tables made under another ``packaging`` version are dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import packaging
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from reconciler.plan import requirements
from reconciler.plan.requirements import (
    applies,
    contains,
    marker_environment,
    parse,
    parse_request,
    use_tables,
)
from reconciler.state.cache import ReadCache, RequirementTables
from reconciler.state.store import StateStore
from tests.support.manifests import REPO

TEXTS = (
    "numpy", "numpy>=1.26,<2", "Scikit_Learn[alldeps]==1.7.2", "pandas ~=2.2.0",
    'tomli>=1.1.0; python_version < "3.11"', "bleach[css,other] (>=6.1)",
    'pywin32>=300 ; platform_system == "Windows"', "pip @ https://example.org/pip-24.0.whl",
    'tinycss2<1.5,>=1.1.0; extra == "css"', "black===24.1.0", "x!=1.0.*,>0.5",
    'colorama; sys_platform == "win32" and extra == "dev"', "a.b-c_d>=1.0rc1",
)  # fmt: skip
INVALID = ("numpy>=", "==1.0", "foo; python_version <", "")
VERSIONS = ("0.4", "0.5.1", "1.0", "1.0.3", "1.1.0", "1.26.4", "2.0.0rc1", "2.2.3", "24.1.0")


@pytest.fixture(autouse=True)
def fresh_tables() -> ReadCache:
    """Each test answers from empty tables of its own (nothing from earlier tests)."""
    cache = ReadCache()
    use_tables(cache)
    _forget()
    return cache


def _forget() -> None:
    parse.cache_clear()
    requirements._marker.cache_clear()
    requirements._specifier_set.cache_clear()


def _as_packaging(text: str) -> tuple[object, ...]:
    req = Requirement(text)
    written = [str(c) for c in req.specifier]  # a fresh requirement's order: as written
    marker = str(req.marker) if req.marker is not None else None
    return (req.name, frozenset(req.extras), str(req.specifier), marker, req.url, written)


def _fields(text: str) -> tuple[object, ...]:
    found = parse(text)
    assert found is not None, text
    written = [str(c) for c in found.specifier]
    return (found.name, found.extras, found.spec, found.marker, found.url, written)


def _saved_and_read_back(cache: ReadCache, tmp_path: Path) -> ReadCache:
    store = StateStore(tmp_path / "state")
    store.save_read_cache(cache)
    again = store.read_cache()
    use_tables(again)
    _forget()
    return again


def test_parses_are_packaging_s_whether_computed_or_read_back(
    fresh_tables: ReadCache, tmp_path: Path
) -> None:
    expected = [_as_packaging(t) for t in TEXTS]
    assert [_fields(t) for t in TEXTS] == expected
    assert [parse(t) for t in INVALID] == [None] * len(INVALID)
    again = _saved_and_read_back(fresh_tables, tmp_path)
    assert set(again.requirements.parsed) == {*TEXTS, *INVALID}
    assert [_fields(t) for t in TEXTS] == expected
    assert [parse(t) for t in INVALID] == [None] * len(INVALID)
    assert not again.changed  # every answer came from the tables
    assert parse("numpy>=1.26,<2").key == "numpy"  # type: ignore[union-attr]
    assert parse("a.b-c_d>=1.0rc1").key == "a-b-c-d"  # type: ignore[union-attr]


def test_specifier_and_marker_answers_are_packaging_s(
    fresh_tables: ReadCache, tmp_path: Path
) -> None:
    env = marker_environment("3.10")
    values = {**{k: str(v) for k, v in default_environment().items()}, "python_version": "3.10"}
    values["python_full_version"] = "3.10.0"

    def answers() -> list[object]:
        out: list[object] = []
        for text in TEXTS:
            found = parse_request(text)
            out += [contains(found.spec, v) for v in VERSIONS]
            out += [applies(found, env, extras) for extras in ((), ("css",), ("dev", "x"))]
        return out

    expected: list[object] = []
    for text in TEXTS:
        req = Requirement(text)
        expected += [
            SpecifierSet(str(req.specifier)).contains(v, prereleases=True) for v in VERSIONS
        ]
        for extras in ((), ("css",), ("dev", "x")):
            expected.append(
                req.marker is None
                or any(req.marker.evaluate({**values, "extra": e}) for e in ("", *extras))
            )
    assert answers() == expected
    assert True in expected and False in expected
    again = _saved_and_read_back(fresh_tables, tmp_path)
    assert answers() == expected
    assert not again.changed
    # Another target Python is another environment: its markers are answered afresh.
    assert marker_environment("3.12").key != env.key
    assert applies(parse_request(TEXTS[4]), marker_environment("3.12")) is False
    assert applies(parse_request(TEXTS[4]), env) is True


def test_a_damaged_row_is_parsed_again_and_invalid_requests_raise(fresh_tables: ReadCache) -> None:
    fresh_tables.requirements.parsed["numpy>=1.26,<2"] = ["numpy", "not a list", "", None, None]
    fresh_tables.requirements.parsed["scipy"] = None  # says "cannot parse": a lie
    assert _fields("numpy>=1.26,<2") == _as_packaging("numpy>=1.26,<2")
    row = ["numpy", [], "<2,>=1.26", None, None, ">=1.26,<2"]  # clauses sorted, then as written
    assert fresh_tables.requirements.parsed["numpy>=1.26,<2"] == row
    assert parse("scipy") is None  # parse trusts the row; a request is checked by packaging
    assert parse_request("scipy").name == "scipy"
    with pytest.raises(InvalidRequirement):
        parse_request("numpy>=")


def test_tables_of_another_packaging_version_are_dropped(
    fresh_tables: ReadCache, tmp_path: Path
) -> None:
    parse("numpy>=1")
    store = StateStore(tmp_path / "state")
    store.save_read_cache(fresh_tables)
    path = tmp_path / "state" / "cache" / "read-cache.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    made_by = data["requirements"]["packaging"]
    assert made_by == f"{packaging.__version__} (format {RequirementTables.FORMAT})"
    assert data["requirements"]["parsed"] == {"numpy>=1": ["numpy", [], ">=1", None, None, ">=1"]}
    for other in ("0.1", packaging.__version__, f"{packaging.__version__} (format 1)"):
        data["requirements"]["packaging"] = other
        path.write_text(json.dumps(data), encoding="utf-8")
        assert store.read_cache().requirements.parsed == {}, other
    data["requirements"]["packaging"] = made_by
    path.write_text(json.dumps(data), encoding="utf-8")
    assert store.read_cache().requirements.parsed == data["requirements"]["parsed"]


def test_the_tables_start_afresh_past_their_limit(
    fresh_tables: ReadCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(type(fresh_tables.requirements), "LIMIT", 3)
    for text in ("a", "b", "c"):
        parse(text)
    assert len(fresh_tables.requirements.parsed) == 3
    parse("d")
    assert fresh_tables.requirements.parsed == {}
    assert fresh_tables.changed
    parse("e")
    assert list(fresh_tables.requirements.parsed) == ["e"]


def test_the_environment_key_names_everything_the_markers_read() -> None:
    # A fresh interpreter computes the same key (nothing in it depends on the process).
    code = "from reconciler.plan.requirements import marker_environment as m; print(m('3.10').key)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO)},
    ).stdout.strip()  # fmt: skip
    assert out == marker_environment("3.10").key
    assert (
        marker_environment(None).values()["python_version"]
        == default_environment()["python_version"]
    )


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789.abrcpostdev+!-_", max_size=16))
def test_a_plain_version_is_one_packaging_reads(text: str) -> None:
    """plain_version says a version is PEP 440 without packaging: only of versions that
    packaging reads (an ``==`` pin of it is then valid)."""
    if requirements.plain_version(text):
        Version(text)


def test_plain_versions_of_an_image() -> None:
    for text in ("1.26.4", "0.64b0", "2.9.0.post0", "3.0rc1.dev2", "2024.1", "10"):
        assert requirements.plain_version(text)
    for text in ("1.0+cpu", "1!2.0", "1.0-1", "1.0.RC1", "v1.0", "1.0_post1", "", "1..0"):
        assert not requirements.plain_version(text)
