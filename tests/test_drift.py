"""``reconciler drift``: every finding kind on real environments, exit codes, no writes.

Runs ``reconciler.cli.main`` in-process with ``--state-dir`` and ``--json``; every
JSON document is validated against ``schemas/drift.v1.schema.json``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.state.environment import read_state
from reconciler.state.store import Owned, OwnedPackage, StateStore
from tests.support.envs import (
    conda_install_more,
    env_python,
    make_conda_prefix,
    make_venv,
    pip_install,
    tree_hash,
    uv_bin,
)
from tests.support.manifests import REPO, SITE, run_cli, write_dist_info, write_manifest

SCHEMA = json.loads((REPO / "schemas" / "drift.v1.schema.json").read_text(encoding="utf-8"))
KINDS = {
    "missing",
    "version-mismatch",
    "managed-changed",
    "foreign",
    "orphaned",
    "broken-requirement",
    "user-site",
}

Finding = tuple[str, str, str, "str | None", "str | None", str]


def drift(
    capsys: pytest.CaptureFixture[str], state_dir: Path, manifest: Path, *args: str
) -> tuple[int, dict[str, Any]]:
    """``reconciler drift --json``: exit code and the schema-valid document."""
    code, out, err = run_cli(capsys, "--state-dir", state_dir, "drift", manifest, "--json", *args)
    assert err == ""
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    assert document["format_version"] == "1"
    return code, document


def findings(document: dict[str, Any], env: str) -> set[Finding]:
    """(kind, manager, name, expected, actual, severity) of one environment's findings."""
    (entry,) = [e for e in document["environments"] if e["name"] == env]
    return {
        (f["kind"], f["manager"], f["name"], f["expected"], f["actual"], f["severity"])
        for f in entry["findings"]
    }


def notices(document: dict[str, Any], env: str) -> list[str]:
    (entry,) = [e for e in document["environments"] if e["name"] == env]
    return list(entry["notices"])


def capture(capsys: pytest.CaptureFixture[str], state_dir: Path, manifest: Path) -> None:
    code, out, err = run_cli(capsys, "--state-dir", state_dir, "baseline", "capture", manifest)
    assert (code, err) == (0, ""), out


def check_summary(document: dict[str, Any], expected: Iterable[Finding]) -> None:
    expected = list(expected)
    summary = document["summary"]
    assert summary["findings"] == len(expected)
    for kind in KINDS:
        assert summary[kind] == sum(1 for f in expected if f[0] == kind), kind


def test_clean_environment_has_no_drift(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["pyfoo ==1.0", "pytorchy"], hybrid=True)
    pip_install(prefix, ["alpha==1.0", "beta==1.0"], wheelhouse, env=isolated)
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {
            "e": {
                "prefix": prefix,
                "conda": ["pyfoo 1.0.*"],
                # gamma's marker excludes this environment: not missing.
                "pip": ["beta>=1", "torchy>=2", "gamma; python_version < '3'"],
            }
        },
        wheelhouse=wheelhouse,
        channel=channel,
    )
    state_dir = tmp_path / "state"
    before = tree_hash(prefix)

    code, document = drift(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 0
    assert findings(document, "e") == set()
    assert any("no baseline recorded yet" in n for n in notices(document, "e"))

    capture(capsys, state_dir, manifest)
    code, document = drift(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 0
    assert findings(document, "e") == set()
    assert notices(document, "e") == []
    check_summary(document, [])
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "drift", manifest)
    assert code == 0
    assert out.splitlines() == [f"e ({prefix}): no drift", "No drift."]
    assert tree_hash(prefix) == before


def test_declared_packages_missing_or_mismatched(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["libfoo ==1.0"], hybrid=True)
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {
            "e": {
                "prefix": prefix,
                "conda": ["libfoo >=2", "condaonly"],
                "pip": ["alpha>=2", "delta"],
            }
        },
        wheelhouse=wheelhouse,
        channel=channel,
    )
    state_dir = tmp_path / "state"
    before = tree_hash(prefix)

    code, document = drift(capsys, state_dir, manifest)
    assert code == 0  # findings change the exit code only with --detailed-exitcode
    expected = {
        ("version-mismatch", "conda", "libfoo", "libfoo >=2", "1.0 (0)", "error"),
        ("missing", "conda", "condaonly", "condaonly", None, "error"),
        ("version-mismatch", "pip", "alpha", "alpha>=2", "1.0", "error"),
        ("missing", "pip", "delta", "delta", None, "error"),
    }
    assert findings(document, "e") == expected
    check_summary(document, expected)
    assert document["summary"]["error"] == 4

    code, _ = drift(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 2
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "drift", manifest)
    assert code == 0
    assert "  error: missing pip delta: declared in environments.e.pip[1], not installed\n" in out
    assert "  error: version-mismatch pip alpha expected alpha>=2, found 1.0: declared in " in out
    assert "expected -" not in out and "found -" not in out
    assert out.splitlines()[-1] == "Drift: 4 findings (4 errors)."
    assert tree_hash(prefix) == before


def test_hand_changes_after_the_baseline(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = make_conda_prefix(
        tmp_path / "env", channel, ["pyfoo ==1.0", "libfoo ==1.0", "condaonly ==1.0"], hybrid=True
    )
    pip_install(prefix, ["alpha==1.0", "beta==1.0"], wheelhouse, env=isolated)
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["alpha"]}}, wheelhouse=wheelhouse
    )
    state_dir = tmp_path / "state"
    capture(capsys, state_dir, manifest)

    # By hand: conda moves two managed packages and adds one; pip moves, removes and adds,
    # and replaces the distribution conda's pyfoo ships (leaving its conda record stale).
    conda_install_more(prefix, channel, ["condaonly ==1.1", "needs-libfoo2"], pin_installed=False)
    pip_install(prefix, ["alpha==2.0", "delta==1.1", "pyfoo==2.0"], wheelhouse, env=isolated)
    assert read_state(prefix).conda["pyfoo"].version == "1.0"
    subprocess.run(
        [uv_bin(), "pip", "uninstall", "--python", str(env_python(prefix)), "beta"],
        env=isolated,
        check=True,
        capture_output=True,
    )
    before = tree_hash(prefix)

    code, document = drift(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 2
    expected = {
        ("managed-changed", "conda", "condaonly", "1.0 (0)", "1.1 (0)", "error"),
        ("managed-changed", "conda", "libfoo", "1.0 (0)", "2.0 (0)", "error"),
        ("managed-changed", "pip", "alpha", "1.0", "2.0", "error"),
        ("managed-changed", "pip", "beta", "1.0", None, "error"),
        ("managed-changed", "conda", "pyfoo", "1.0 (0)", "2.0", "error"),
        ("foreign", "conda", "needs-libfoo2", None, "1.0", "warning"),
        ("foreign", "pip", "delta", None, "1.1", "warning"),
    }
    assert findings(document, "e") == expected
    check_summary(document, expected)
    (pyfoo,) = [f for f in document["environments"][0]["findings"] if f["name"] == "pyfoo"]
    assert pyfoo["detail"] == (
        "pyfoo 2.0 installed by uv replaced the files of conda package pyfoo 1.0; "
        "its conda-meta record is stale"
    )
    assert tree_hash(prefix) == before


def _captured_empty_venv(
    tmp_path: Path, wheelhouse: Path, capsys: pytest.CaptureFixture[str], declared: str
) -> tuple[Path, Path, Path]:
    """An empty venv whose baseline is captured (nothing managed), declaring ``declared``:
    (venv, manifest, state dir)."""
    venv = make_venv(tmp_path / "venv")
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": venv, "pip": [declared]}}, wheelhouse=wheelhouse
    )
    state_dir = tmp_path / "state"
    capture(capsys, state_dir, manifest)
    return venv, manifest, state_dir


def _own(state_dir: Path, venv: Path, versions: dict[str, str]) -> None:
    """Record the pip packages ``versions`` as installed by reconciler."""
    owned = {f"pip:{n}": OwnedPackage(n, "pip", v) for n, v in versions.items()}
    StateStore(state_dir).save_owned(venv, Owned(owned))


def test_orphaned_owned_package(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    venv, manifest, state_dir = _captured_empty_venv(tmp_path, wheelhouse, capsys, "alpha")
    pip_install(venv, ["alpha==1.0", "delta==1.0"], wheelhouse, env=isolated)
    # reconciler installed alpha and delta (and gamma, since uninstalled); delta is no
    # longer declared.
    _own(state_dir, venv, {"alpha": "1.0", "delta": "1.0", "gamma": "1.0"})
    before = tree_hash(venv)

    code, document = drift(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 2
    expected = {("orphaned", "pip", "delta", None, "1.0", "info")}
    assert findings(document, "e") == expected
    check_summary(document, expected)
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "drift", manifest)
    assert "info: orphaned pip delta" in out
    assert "reconciler never uninstalls" in out
    assert tree_hash(venv) == before


def test_quiet_drift_shows_warnings_and_errors_and_a_shared_detail_once(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    venv, manifest, state_dir = _captured_empty_venv(tmp_path, wheelhouse, capsys, "alpha")
    pip_install(venv, ["alpha==1.0", "delta==1.0", "epsilon-pkg", "torchy==1.0"], wheelhouse)
    _own(state_dir, venv, dict.fromkeys(("alpha", "delta", "epsilon-pkg"), "1.0"))
    orphaned = (
        "  orphaned (2 above): installed by reconciler, no longer in the manifest (reconciler "
        "never uninstalls; remove it by hand if unused)"
    )

    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "drift", manifest)
    assert code == 0
    assert out.splitlines() == [
        f"e ({venv}):",
        "  warning: foreign pip torchy 1.0: installed outside reconciler and not in the manifest",
        "  info: orphaned pip delta 1.0",
        "  info: orphaned pip epsilon-pkg 1.0",
        orphaned,
        "Drift: 3 findings (1 warning, 2 info).",
    ]
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "drift", "-q", manifest)
    assert code == 0
    assert out.splitlines() == [
        f"e ({venv}):",
        "  warning: foreign pip torchy 1.0: installed outside reconciler and not in the manifest",
        "Drift: 3 findings (1 warning, 2 info); info not shown (-q).",
    ]


def test_a_missing_environment_is_one_error_finding(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    new, gone = tmp_path / "new", tmp_path / "gone"
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {
            "new": {"prefix": new, "create": {"venv": "/usr/bin/python3"}, "pip": ["alpha"]},
            "gone": {"prefix": gone, "pip": ["alpha", "delta"]},
        },
        wheelhouse=wheelhouse,
    )
    state_dir = tmp_path / "state"
    code, document = drift(capsys, state_dir, manifest)
    assert code == 0
    assert [e["findings"] for e in document["environments"]] == [
        [
            {
                "kind": "missing",
                "name": "new",
                "manager": "pip",
                "expected": None,
                "actual": None,
                "severity": "error",
                "detail": f"the environment's prefix {new} does not exist; "
                "`reconciler apply` creates it",
            }
        ],
        [
            {
                "kind": "missing",
                "name": "gone",
                "manager": "pip",
                "expected": None,
                "actual": None,
                "severity": "error",
                "detail": f"the environment's prefix {gone} does not exist; fix the prefix, or "
                'add `create: {python: "3.11"}` or `create: {venv: PYTHON}`',
            }
        ],
    ]
    assert (document["summary"]["missing"], document["summary"]["error"]) == (2, 2)
    assert drift(capsys, state_dir, manifest, "--detailed-exitcode")[0] == 2
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "drift", manifest)
    assert out.splitlines()[-2:] == [
        f"  error: missing pip gone: the environment's prefix {gone} does not exist; fix the "
        'prefix, or add `create: {python: "3.11"}` or `create: {venv: PYTHON}`',
        "Drift: 2 findings (2 errors).",
    ]
    assert not new.exists() and not gone.exists()


def test_broken_requirement(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    venv = make_venv(tmp_path / "venv")
    pip_install(venv, ["alpha==1.0"], wheelhouse, env=isolated)
    pip_install(venv, ["beta==2.0"], wheelhouse, env=isolated, extra_args=["--no-deps"])
    check = subprocess.run(
        [uv_bin(), "pip", "check", "--python", str(env_python(venv))],
        env=isolated,
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0  # uv agrees that the environment is broken
    manifest = write_manifest(tmp_path / "m.yaml", {"e": {"prefix": venv}}, wheelhouse=wheelhouse)
    before = tree_hash(venv)

    code, document = drift(capsys, tmp_path / "state", manifest, "--detailed-exitcode")
    assert code == 2
    expected = {("broken-requirement", "pip", "beta", "alpha>=2", "1.0", "warning")}
    assert findings(document, "e") == expected
    check_summary(document, expected)
    (entry,) = document["environments"]
    assert entry["findings"][0]["detail"] == "beta requires alpha>=2"
    assert tree_hash(venv) == before


def test_user_site_packages(
    tmp_path: Path,
    channel: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = make_conda_prefix(tmp_path / "conda", channel, ["pyfoo ==1.0"])  # not a venv
    user_site = Path(isolated["HOME"]) / ".local" / SITE
    write_dist_info(user_site, "delta", "1.1", installer="pip")
    write_dist_info(user_site, "pyfoo", "2.0", installer="pip")
    venv = make_venv(tmp_path / "venv")  # a venv never sees the user site
    manifest = write_manifest(
        tmp_path / "m.yaml", {"conda": {"prefix": prefix}, "venv": {"prefix": venv}}
    )
    state_dir = tmp_path / "state"
    capture(capsys, state_dir, manifest)
    before = tree_hash(prefix, venv, user_site)

    code, document = drift(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 2
    expected = {
        ("user-site", "pip", "delta", None, "1.1", "info"),
        ("user-site", "pip", "pyfoo", "1.0", "2.0", "warning"),  # shadows conda's pyfoo 1.0
    }
    assert findings(document, "conda") == expected
    assert findings(document, "venv") == set()
    check_summary(document, expected)
    details = {f["name"]: f["detail"] for f in document["environments"][0]["findings"]}
    assert "shadows the environment's copy" in details["pyfoo"]
    assert tree_hash(prefix, venv, user_site) == before


def test_a_new_image_is_not_drift(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = make_conda_prefix(
        tmp_path / "env", channel, ["condaonly ==1.0", "libfoo ==1.0"], hybrid=True
    )
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    manifest = write_manifest(tmp_path / "m.yaml", {"e": {"prefix": prefix}}, wheelhouse=wheelhouse)
    state_dir = tmp_path / "state"
    capture(capsys, state_dir, manifest)
    baseline = StateStore(state_dir).baseline(prefix)
    assert baseline is not None and baseline.image is not None

    # The same package changes as a hand change first: that is drift.
    conda_install_more(prefix, channel, ["condaonly ==1.1"], pin_installed=False)
    pip_install(prefix, ["alpha==2.0"], wheelhouse, env=isolated)
    code, document = drift(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 2
    assert findings(document, "e") == {
        ("managed-changed", "conda", "condaonly", "1.0 (0)", "1.1 (0)", "error"),
        ("managed-changed", "pip", "alpha", "1.0", "2.0", "error"),
    }

    # Now the image under the environment is replaced: its first history block differs.
    history = prefix / "conda-meta" / "history"
    text = history.read_text()
    first, rest = text.split("\n==> ", 1)
    new_first = first.replace("2026-01-01 00:00:00", "2026-07-01 12:00:00").replace(
        "condaonly-1.0-0", "condaonly-1.1-0"
    )
    assert new_first != first
    history.write_text(new_first + "\n==> " + rest)
    before = tree_hash(prefix)
    recorded = (StateStore(state_dir).env_dir(prefix) / "baseline.json").read_bytes()

    code, document = drift(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 0
    assert findings(document, "e") == set()
    assert not [f for f in findings(document, "e") if f[0] == "managed-changed"]
    (notice,) = notices(document, "e")
    assert "image" in notice and "changed" in notice and str(prefix) in notice
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "drift", manifest)
    assert code == 0
    assert "note: the image under" in out
    assert tree_hash(prefix) == before
    # drift changes nothing: the new baseline is recorded by the next apply or capture.
    assert (StateStore(state_dir).env_dir(prefix) / "baseline.json").read_bytes() == recorded
    assert read_state(prefix).conda["condaonly"].version == "1.1"


def test_an_owned_dependency_of_a_declared_package_is_not_orphaned(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    venv, manifest, state_dir = _captured_empty_venv(tmp_path, wheelhouse, capsys, "gamma")
    # reconciler installed gamma, and beta and alpha because gamma needs them; and delta,
    # which nothing declared needs any more.
    pip_install(venv, ["gamma", "delta==1.0"], wheelhouse, env=isolated)
    _own(state_dir, venv, {"gamma": "1.0", "beta": "2.0", "alpha": "2.0", "delta": "1.0"})
    code, document = drift(capsys, state_dir, manifest)
    assert code == 0
    assert {f for f in findings(document, "e") if f[0] == "orphaned"} == {
        ("orphaned", "pip", "delta", None, "1.0", "info")
    }
