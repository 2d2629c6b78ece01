"""Corrupt state files: a clear error naming the file, or a safe rebuild; never a traceback.

Every state file reconciler reads is damaged in several ways (empty, truncated,
binary garbage, JSON of the wrong shape, a wrong ``format``), then the commands
that read it run through the real CLI entry. Records the tool must trust
(baseline, owned set, journal, a saved plan, the status file) give exit 1 with
the file's path and what to do; derived data (the read cache, the manifest
memo) is rebuilt. Above all a damaged baseline never frees the managed set:
with ``alpha 1.0`` managed, a manifest asking for ``alpha>=2`` is refused (exit
3) with a good baseline and fails (exit 1) with a bad one; it never plans the
upgrade (exit 0).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.manifest import schema_key
from reconciler.state.store import StateStore
from tests.faults.guards import guard_processes
from tests.support.envs import make_venv, pip_install, tree_hash
from tests.support.manifests import run_cli, write_manifest

Corruption = tuple[str, Callable[[bytes], bytes]]
#: ``cli(STATE, *argv)``: ``reconciler --state-dir STATE ARGV...`` in-process -> (code, out, err).
Cli = Callable[..., tuple[int, str, str]]


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _reformat(good: bytes, **changes: Any) -> bytes:
    """The good document with keys changed (``None`` removes a key)."""
    document = json.loads(good)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return _json(document)


#: Damage any JSON state file can suffer.
COMMON: tuple[Corruption, ...] = (
    ("empty", lambda good: b""),
    ("truncated", lambda good: good[: len(good) // 2]),
    ("one-byte", lambda good: good[:1]),
    ("binary", lambda good: bytes(range(256)) * 4),
    ("nul-bytes", lambda good: b"\x00" * 64),
    ("not-utf8", lambda good: b'{"format": 1, "x": "\xff\xfe"}'),
    ("list", lambda good: b"[]"),
    ("string", lambda good: b'"state"'),
    ("null", lambda good: b"null"),
    ("number", lambda good: b"1"),
    ("empty-object", lambda good: b"{}"),
    ("wrong-format", lambda good: _reformat(good, format=2)),
    ("format-as-string", lambda good: _reformat(good, format="1")),
    ("no-format", lambda good: _reformat(good, format=None)),
)


def _ids(corruptions: tuple[Corruption, ...]) -> list[str]:
    return [name for name, _ in corruptions]


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(state: Path, *argv: str | Path) -> tuple[int, str, str]:
        return run_cli(capsys, "--state-dir", state, *argv)

    return run


@pytest.fixture(scope="module")
def managed_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """A venv with alpha 1.0; shared: every test checks it is left unchanged."""
    prefix = make_venv(tmp_path_factory.mktemp("managed") / "venv")
    pip_install(prefix, ["alpha==1.0"], wheelhouse)
    return prefix


@pytest.fixture
def setup(
    tmp_path: Path, wheelhouse: Path, managed_venv: Path, isolated: dict[str, str], cli: Cli
) -> tuple[Path, Path, StateStore]:
    """(manifest asking ``alpha>=2``, state dir, store); the baseline is captured."""
    body = {"e": {"prefix": managed_venv, "pip": ["alpha>=2"]}}
    manifest = write_manifest(tmp_path / "manifest.yaml", body, wheelhouse=wheelhouse)
    state = tmp_path / "state"
    code, out, err = cli(state, "baseline", "capture", manifest)
    assert (code, err) == (0, ""), err
    assert out == "e: baseline captured, 1 managed package\n"
    return manifest, state, StateStore(state)


# -- baseline.json ------------------------------------------------------------------------

BASELINE: tuple[Corruption, ...] = (
    *COMMON,
    ("packages-list", lambda good: _reformat(good, packages=[])),
    ("packages-missing", lambda good: _reformat(good, packages=None)),
    ("packages-string", lambda good: _reformat(good, packages="alpha")),
    ("record-not-object", lambda good: _reformat(good, packages={"pip:alpha": "1.0"})),
    (
        "record-without-version",
        lambda good: _reformat(good, packages={"pip:alpha": {"name": "alpha", "manager": "pip"}}),
    ),
)


def test_good_baseline_refuses_the_upgrade(
    setup: tuple[Path, Path, StateStore], managed_venv: Path, cli: Cli
) -> None:
    """The control: with the baseline intact, moving alpha is refused."""
    manifest, state, _ = setup
    before = tree_hash(managed_venv)
    code, out, err = cli(state, "plan", manifest)
    assert (code, err) == (3, "")
    assert "refused: requested alpha>=2 would upgrade managed alpha 1.0" in out
    assert tree_hash(managed_venv) == before


@pytest.mark.parametrize("corrupt", [c for _, c in BASELINE], ids=_ids(BASELINE))
def test_corrupt_baseline_is_an_error_not_an_empty_managed_set(
    corrupt: Callable[[bytes], bytes],
    setup: tuple[Path, Path, StateStore],
    managed_venv: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    manifest, state, store = setup
    path = store.env_dir(managed_venv) / "baseline.json"
    good = path.read_bytes()
    path.write_bytes(corrupt(good))
    damaged = path.read_bytes()
    before = tree_hash(managed_venv)
    attempts = guard_processes(monkeypatch)
    for argv in (
        ("plan", manifest),
        ("plan", manifest, "--json"),
        ("drift", manifest),
        ("baseline", "show", manifest),
        ("apply", manifest),
    ):
        code, out, err = cli(state, *argv)
        assert code == 1, (argv, code, out, err)  # never 0 (upgrade planned) nor 3 from nothing
        assert out == "", argv
        _no_traceback(err)
        assert err.startswith("error: ") and str(path) in err.splitlines()[0], err
        assert "hint: run `reconciler baseline capture` to record it again" in err, err
    assert attempts == []
    assert path.read_bytes() == damaged  # reading never "repairs" it into an empty set
    assert tree_hash(managed_venv) == before
    assert not (state / "status.json").exists()
    assert not (state / "logs").exists()


@pytest.mark.parametrize("corrupt", [c for _, c in BASELINE[:6]], ids=_ids(BASELINE[:6]))
def test_baseline_capture_replaces_a_corrupt_baseline(
    corrupt: Callable[[bytes], bytes],
    setup: tuple[Path, Path, StateStore],
    managed_venv: Path,
    cli: Cli,
) -> None:
    """As the hint says: capture does not read the old file, it records the live one."""
    manifest, state, store = setup
    path = store.env_dir(managed_venv) / "baseline.json"
    good = json.loads(path.read_bytes())
    path.write_bytes(corrupt(path.read_bytes()))
    code, out, err = cli(state, "baseline", "capture", manifest)
    assert (code, err) == (0, "")
    assert out == "e: baseline captured, 1 managed package\n"
    recaptured = json.loads(path.read_bytes())
    assert recaptured["packages"] == good["packages"]
    assert recaptured["packages"]["pip:alpha"]["version"] == "1.0"
    code, out, err = cli(state, "plan", manifest)
    assert (code, err) == (3, "")


@pytest.mark.parametrize(
    "changes",
    [{"packages": {}}, {"image": "some-other-image"}, {"image": 7}, {"prefix": "/elsewhere"}],
    ids=["emptied", "other-image", "image-not-a-string", "other-prefix"],
)
def test_valid_but_altered_baseline_still_protects(
    changes: dict[str, Any],
    setup: tuple[Path, Path, StateStore],
    managed_venv: Path,
    cli: Cli,
) -> None:
    """A well-formed baseline that lost alpha: alpha is then foreign or image-managed; refused."""
    manifest, state, store = setup
    path = store.env_dir(managed_venv) / "baseline.json"
    path.write_bytes(_reformat(path.read_bytes(), **changes))
    code, out, err = cli(state, "plan", manifest)
    assert (code, err) == (3, ""), out
    assert "alpha" in out and "refused" in out


# -- owned.json ------------------------------------------------------------------------------

_OWNED_GOOD = _json(
    {"format": 1, "packages": {"pip:delta": {"name": "delta", "manager": "pip", "version": "1.1"}}}
)
OWNED: tuple[Corruption, ...] = (
    *COMMON,
    ("packages-list", lambda good: _reformat(good, packages=[])),
    ("packages-missing", lambda good: _reformat(good, packages=None)),
)


@pytest.mark.parametrize("corrupt", [c for _, c in OWNED], ids=_ids(OWNED))
def test_corrupt_owned_set_is_an_error(
    corrupt: Callable[[bytes], bytes],
    setup: tuple[Path, Path, StateStore],
    managed_venv: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    manifest, state, store = setup
    path = store.env_dir(managed_venv) / "owned.json"
    path.write_bytes(corrupt(_OWNED_GOOD))
    before = tree_hash(managed_venv)
    attempts = guard_processes(monkeypatch)
    for argv in (("plan", manifest), ("drift", manifest), ("apply", manifest)):
        code, out, err = cli(state, *argv)
        assert (code, out) == (1, ""), (argv, code, out, err)
        _no_traceback(err)
        assert err.startswith(f"error: state file {path} is "), err
        assert "hint: move it aside; reconciler then treats those packages as foreign" in err
    assert attempts == []
    assert tree_hash(managed_venv) == before


def test_owned_entries_that_are_not_records_protect_their_package(
    setup: tuple[Path, Path, StateStore], managed_venv: Path, cli: Cli
) -> None:
    """A damaged entry is dropped: the package is not owned, so it stays protected."""
    manifest, state, store = setup
    path = store.env_dir(managed_venv) / "owned.json"
    for entry in ("alpha", 1, None, ["alpha", "pip", "1.0"], {"name": "alpha"}):
        path.write_bytes(_json({"format": 1, "packages": {"pip:alpha": entry}}))
        code, out, err = cli(state, "plan", manifest)
        assert (code, err) == (3, ""), (entry, out)
        assert "refused: requested alpha>=2 would upgrade managed alpha 1.0" in out


# -- journal.json --------------------------------------------------------------------------

_JOURNAL_GOOD = _json(
    {
        "format": 1,
        "status": "done",
        "pid": 4242,
        "started_at": "2026-01-01T00:00:00+0000",
        "step": "verify",
        "error": "",
        "changes": [],
    }
)
JOURNAL: tuple[Corruption, ...] = (
    *COMMON,
    ("status-unknown", lambda good: _reformat(good, status="rm -rf /")),
    ("pid-string", lambda good: _reformat(good, pid="4242")),
    ("pid-negative", lambda good: _reformat(good, pid=-1)),
    ("changes-string", lambda good: _reformat(good, status="running", changes="alpha")),
    ("change-not-object", lambda good: _reformat(good, status="running", changes=[1])),
    ("change-incomplete", lambda good: _reformat(good, status="running", changes=[{"a": 1}])),
    ("no-started-at", lambda good: _reformat(good, started_at=None)),
)


@pytest.mark.parametrize("corrupt", [c for _, c in JOURNAL], ids=_ids(JOURNAL))
def test_corrupt_journal_stops_apply_before_anything_runs(
    corrupt: Callable[[bytes], bytes],
    setup: tuple[Path, Path, StateStore],
    managed_venv: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    manifest, state, store = setup
    path = store.env_dir(managed_venv) / "journal.json"
    path.write_bytes(corrupt(_JOURNAL_GOOD))
    damaged = path.read_bytes()
    before = tree_hash(managed_venv)
    attempts = guard_processes(monkeypatch)
    code, out, err = cli(state, "apply", manifest)
    assert (code, out) == (1, ""), (code, out, err)
    _no_traceback(err)
    assert err.startswith(f"error: apply journal {path} is "), err
    assert "hint: check the environment with `reconciler drift`, then move the journal aside" in err
    assert attempts == []
    assert path.read_bytes() == damaged
    assert tree_hash(managed_venv) == before
    assert not (state / "status.json").exists()


def test_good_journal_is_read(
    setup: tuple[Path, Path, StateStore], managed_venv: Path, cli: Cli
) -> None:
    """The control: the same journal undamaged lets apply reach its refusal."""
    manifest, state, store = setup
    (store.env_dir(managed_venv) / "journal.json").write_bytes(_JOURNAL_GOOD)
    code, _, err = cli(state, "apply", manifest)
    assert (code, err) == (3, "")


# -- status.json -------------------------------------------------------------------------------

_STATUS_GOOD = _json(
    {
        "format": 1,
        "state": "finished",
        "pid": 4242,
        "started_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:05Z",
        "steps_total": 2,
        "steps_done": 2,
        "current": [],
        "environments": {"e": {"status": "done", "message": "", "current": ""}},
        "notices": [],
        "log": None,
        "error": "",
    }
)
STATUS: tuple[Corruption, ...] = (
    *COMMON,
    ("state-unknown", lambda good: _reformat(good, state="exploded")),
    ("pid-string", lambda good: _reformat(good, state="running", pid="abc")),
    ("pid-zero", lambda good: _reformat(good, state="running", pid=0)),
    ("pid-negative", lambda good: _reformat(good, state="running", pid=-1)),
    ("pid-huge", lambda good: _reformat(good, state="running", pid=2**70)),
    ("pid-bool", lambda good: _reformat(good, state="running", pid=True)),
    ("environments-list", lambda good: _reformat(good, environments=["e"])),
    ("environment-not-object", lambda good: _reformat(good, environments={"e": "done"})),
    ("notices-number", lambda good: _reformat(good, notices=3)),
    ("current-string", lambda good: _reformat(good, current="x")),
    ("steps-string", lambda good: _reformat(good, steps_total="2")),
)


def test_good_status_is_shown(tmp_path: Path, cli: Cli) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "status.json").write_bytes(_STATUS_GOOD)
    code, out, err = cli(state, "status")
    assert (code, err) == (0, "")
    assert out.startswith("apply finished (pid 4242")
    # Written before the key was renamed ("format": 1): read, shown as format_version "1".
    code, out, err = cli(state, "status", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert (document["format_version"], "format" in document) == ("1", False)


@pytest.mark.parametrize("corrupt", [c for _, c in STATUS], ids=_ids(STATUS))
def test_corrupt_status_file_is_an_error(
    corrupt: Callable[[bytes], bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / "status.json"
    path.write_bytes(corrupt(_STATUS_GOOD))
    attempts = guard_processes(monkeypatch)
    for argv in (("status",), ("status", "--json")):
        code, out, err = cli(state, *argv)
        assert (code, out) == (1, ""), (argv, code, out, err)
        _no_traceback(err)
        assert err.startswith(f"error: status file {path} is "), err
        assert "hint: the next apply rewrites it; remove it to clear this error" in err
    assert attempts == []


def test_apply_rewrites_a_corrupt_status_file(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], cli: Cli
) -> None:
    """The status file is derived: the next apply replaces it, and status works again."""
    venv = make_venv(tmp_path / "venv")
    manifest = write_manifest(
        tmp_path / "manifest.yaml", {"e": {"prefix": venv, "pip": ["delta"]}}, wheelhouse=wheelhouse
    )
    state = tmp_path / "state"
    state.mkdir()
    (state / "status.json").write_bytes(b'{"format": 1, "state": "runn')
    assert cli(state, "status")[0] == 1
    code, _, err = cli(state, "apply", manifest)
    assert (code, err) == (0, ""), err
    code, out, err = cli(state, "status", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert (document["format_version"], document["state"]) == ("1", "finished")
    assert "format" not in document
    assert document["environments"]["e"]["status"] == "done"


# -- derived caches: rebuilt ---------------------------------------------------------------------


def _plan_json(state: Path, manifest: Path, cli: Cli) -> dict[str, Any]:
    code, out, err = cli(state, "plan", manifest, "--json")
    assert (code, err) == (3, ""), err
    document: dict[str, Any] = json.loads(out)
    return document


CACHES: tuple[Corruption, ...] = (
    *COMMON,
    ("tables-of-wrong-type", lambda good: _reformat(good, records=[1], dists="x", matches=3)),
    (
        "entries-of-wrong-shape",
        lambda good: _reformat(
            good,
            records={"x": 1, "y": [1, 2, 3]},
            dists={"x": [[1], "garbage"]},
            matches={"a": "yes"},
        ),
    ),
    ("schema-valid-not-a-list", lambda good: _reformat(good, schema_valid="abc")),
    ("conda-specs-wrong-shape", lambda good: _reformat(good, conda_specs={"alpha": "alpha"})),
)


@pytest.mark.parametrize("name", ["read-cache.json", "manifests.json"])
@pytest.mark.parametrize("corrupt", [c for _, c in CACHES], ids=_ids(CACHES))
def test_corrupt_cache_is_rebuilt(
    name: str,
    corrupt: Callable[[bytes], bytes],
    setup: tuple[Path, Path, StateStore],
    managed_venv: Path,
    cli: Cli,
) -> None:
    manifest, state, _ = setup
    expected = _plan_json(state, manifest, cli)  # fills both caches
    path = state / "cache" / name
    good = path.read_bytes()
    path.write_bytes(corrupt(good))
    assert _plan_json(state, manifest, cli) == expected  # the same decisions, from a fresh read
    rebuilt = json.loads(path.read_bytes())
    assert isinstance(rebuilt, dict) and rebuilt["format"] == 1
    assert _plan_json(state, manifest, cli) == expected
    code, _, err = cli(state, "validate", manifest)
    assert (code, err) == (0, "")


def test_poisoned_read_cache_does_not_free_managed_packages(
    setup: tuple[Path, Path, StateStore], managed_venv: Path, cli: Cli
) -> None:
    """Cache entries are keyed by file stamps: entries for files that changed are not used."""
    manifest, state, _ = setup
    expected = _plan_json(state, manifest, cli)
    path = state / "cache" / "read-cache.json"
    cache = json.loads(path.read_bytes())
    assert cache["dists"], "the read cache holds the venv's distributions"
    for table in cache["dists"].values():  # site-packages directory -> entry -> entry
        for entry in table:
            table[entry] = [0, "zzz", "zzz", "9", [], "", False]  # stale stamps
    path.write_bytes(_json(cache))
    assert _plan_json(state, manifest, cli) == expected


# -- a saved plan for apply --plan ---------------------------------------------------------------


def _altered(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def alter(good: bytes) -> bytes:
        document = json.loads(good)
        change(document)
        return _json(document)

    return alter


def _env(document: dict[str, Any]) -> dict[str, Any]:
    env: dict[str, Any] = document["environments"][0]
    return env


PLAN_FILE: tuple[Corruption, ...] = (
    *COMMON[:11],
    ("wrong-format-version", _altered(lambda d: d.update(format_version="2"))),
    ("no-format-version", _altered(lambda d: d.pop("format_version"))),
    ("manifest-missing", _altered(lambda d: d.pop("manifest"))),
    ("environments-object", _altered(lambda d: d.update(environments={"e": {}}))),
    ("environment-string", _altered(lambda d: d.update(environments=["e"]))),
    ("requirements-string", _altered(lambda d: _env(d).update(pip_requirements="alpha>=2"))),
    ("constraints-missing", _altered(lambda d: _env(d).pop("pip_constraints"))),
    ("pinned-missing", _altered(lambda d: _env(d).pop("conda_pinned"))),
    ("changes-string", _altered(lambda d: _env(d).update(changes="install"))),
    ("change-action-unknown", _altered(lambda d: _env(d)["changes"][0].update(action="rm -rf"))),
    ("change-refused-string", _altered(lambda d: _env(d)["changes"][0].update(refused="no"))),
    (
        "requirement-is-an-option",
        _altered(lambda d: _env(d).update(pip_requirements=["--index-url=http://evil.invalid"])),
    ),
    (
        "requirement-is-a-url",
        _altered(lambda d: _env(d).update(pip_requirements=["alpha @ file:///etc/passwd"])),
    ),
    (
        "constraint-with-a-line-break",
        _altered(lambda d: _env(d).update(pip_constraints=["alpha==1.0\n-e /tmp/evil"])),
    ),
    (
        "constraint-is-an-option",
        _altered(lambda d: _env(d).update(pip_constraints=["--trusted-host=evil.invalid"])),
    ),
    (
        "conda-spec-is-a-file",
        _altered(lambda d: _env(d).update(conda_specs=["/etc/alpha-1.0-0.conda"])),
    ),
    (
        "change-version-injects",
        _altered(
            lambda d: _env(d)["changes"][0].update(
                refused=False, to="1.0 --index-url=http://evil.invalid", reason=""
            )
        ),
    ),
)


@pytest.fixture
def saved_plan(setup: tuple[Path, Path, StateStore], tmp_path: Path, cli: Cli) -> Path:
    manifest, state, _ = setup
    out = tmp_path / "saved-plan.json"
    code, _, err = cli(state, "plan", manifest, "--out", out)
    assert (code, err) == (3, "")
    return out


def test_good_saved_plan_is_applied(
    setup: tuple[Path, Path, StateStore], saved_plan: Path, managed_venv: Path, cli: Cli
) -> None:
    """The control: the saved plan as written is read and applied (its refusal holds)."""
    _, state, _ = setup
    before = tree_hash(managed_venv)
    code, out, err = cli(state, "apply", "--plan", saved_plan)
    assert (code, err) == (3, "")
    assert "e: refused" in out
    assert tree_hash(managed_venv) == before


@pytest.mark.parametrize("corrupt", [c for _, c in PLAN_FILE], ids=_ids(PLAN_FILE))
def test_corrupt_saved_plan_is_an_error(
    corrupt: Callable[[bytes], bytes],
    setup: tuple[Path, Path, StateStore],
    saved_plan: Path,
    managed_venv: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    manifest, state, _ = setup
    saved_plan.write_bytes(corrupt(saved_plan.read_bytes()))
    before = tree_hash(managed_venv)
    attempts = guard_processes(monkeypatch)
    for argv in (("apply", "--plan", saved_plan), ("apply", manifest, "--plan", saved_plan)):
        code, out, err = cli(state, *argv)
        assert (code, out) == (1, ""), (argv, code, out, err)
        _no_traceback(err)
        first = err.splitlines()[0]
        assert first.startswith("error: ") and str(saved_plan) in first, err
        assert "hint: make it again with `reconciler plan MANIFEST --out FILE`" in err
    assert attempts == []
    assert tree_hash(managed_venv) == before
    assert not (state / "status.json").exists()


# -- a poisoned manifest memo -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        (
            "conda: ['/etc/alpha-1.0-0.conda']",
            "environments.e.conda[0]",
            "paths to package files are not allowed",
        ),
        (
            "conda: ['../../etc::alpha']",
            "environments.e.conda[0]",
            "names the channel '../../etc', which is not a channel name",
        ),
        (
            "kernel: {name: 'a/../../etc', display_name: x}",
            "environments.e.kernel.name",
            "invalid kernel name 'a/../../etc'",
        ),
    ],
    ids=["conda-package-file", "conda-channel-path", "kernel-name-path"],
)
def test_remembered_checks_never_skip_safety_checks(
    body: str, where: str, message: str, tmp_path: Path, cli: Cli
) -> None:
    """cache/manifests.json remembers passed checks; a memo claiming more skips none of these."""
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"version: 1\nenvironments:\n  e:\n    prefix: /nonexistent-faults\n    {body}\n",
        encoding="utf-8",
    )
    state = tmp_path / "state"
    (state / "cache").mkdir(parents=True)
    memo = {
        "format": 1,
        "schema_valid": [schema_key(hashlib.sha256(manifest.read_bytes()).hexdigest())],
        "conda_specs": {
            "/etc/alpha-1.0-0.conda": ["alpha", None, True],
            "../../etc::alpha": ["alpha", None, False],
        },
    }
    (state / "cache" / "manifests.json").write_bytes(_json(memo))
    code, out, err = cli(state, "plan", manifest)
    assert (code, out) == (1, ""), err
    assert f"{manifest}:5:" in err and f": {where}: " in err and message in err, err
    _no_traceback(err)
