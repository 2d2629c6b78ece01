"""The command line contract (SPEC "Commands"): exit codes, output, options, entry points.

Most tests run ``reconciler.cli.main`` in-process on real venvs and prefixes;
``test_*_subprocess`` run ``python -m reconciler`` and a console script for real.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import reconciler
from reconciler.cli import main
from reconciler.state.store import StateStore
from tests.support.envs import make_conda_prefix, make_venv, pip_install, tree_hash, uv_bin
from tests.support.manifests import REPO, run_cli, write_manifest

PLAN_SCHEMA = json.loads((REPO / "schemas" / "plan.v1.schema.json").read_text(encoding="utf-8"))
DRIFT_SCHEMA = json.loads((REPO / "schemas" / "drift.v1.schema.json").read_text(encoding="utf-8"))
WHERE = re.compile(r":\d+:\d+: ")


@pytest.fixture
def venv(tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]) -> Path:
    """A venv with alpha 1.0 (installed by uv from the wheelhouse)."""
    prefix = make_venv(tmp_path / "venv")
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    return prefix


def manifest_for(tmp_path: Path, wheelhouse: Path, prefix: Path, pip: list[str]) -> Path:
    return write_manifest(
        tmp_path / "manifest.yaml", {"e": {"prefix": prefix, "pip": pip}}, wheelhouse=wheelhouse
    )


def subprocess_env(isolated: dict[str, str]) -> dict[str, str]:
    """The isolated environment plus ``PYTHONPATH`` = the repository root."""
    return {**isolated, "PYTHONPATH": str(REPO)}


def plan_json(
    capsys: pytest.CaptureFixture[str], state_dir: Path, manifest: Path, *args: str
) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli(capsys, "--state-dir", state_dir, "plan", manifest, "--json", *args)
    assert err == ""
    document = json.loads(out)
    jsonschema.validate(document, PLAN_SCHEMA)
    return code, document


# -- validate -------------------------------------------------------------------------------


def test_validate_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"a": {"prefix": tmp_path / "a", "pip": ["alpha"]}, "b": {"prefix": tmp_path / "b"}},
    )
    assert run_cli(capsys, "validate", manifest) == (0, f"{manifest}: valid (2 environments)\n", "")
    assert run_cli(capsys, "validate", "-q", manifest) == (0, "", "")
    example = REPO / "manifests" / "venv.yaml"
    assert run_cli(capsys, "validate", example) == (0, f"{example}: valid (1 environment)\n", "")


def test_validate_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "version: 1\nenvironments:\n  e:\n    prefix: /opt/x\n    pipp: [alpha]\n"
        "    pip: ['alpha; rm -rf /']\n"
    )
    code, out, err = run_cli(capsys, "validate", manifest)
    assert (code, out) == (1, "")
    assert err.startswith("error: ")
    assert f"{manifest}:5:5: environments.e.pipp: unknown key 'pipp'" in err
    assert f"{manifest}:6:" in err  # the second problem is reported in the same run
    assert "hint: 2 problems" in err
    assert "Traceback" not in err

    # A missing file is not a problem in the manifest: say so, and where it was looked for.
    missing = tmp_path / "missing.yaml"
    for command in ("validate", "plan", "apply", "drift", "baseline show", "lifecycle"):
        code, out, err = run_cli(capsys, *command.split(), missing)
        assert (code, out) == (1, ""), command
        assert err == (
            f"error: {missing}: no such file\n  hint: check the path; a relative path is read "
            f"from the current directory ({os.getcwd()})\n"
        ), command


def test_validate_invalid_subprocess(isolated: dict[str, str]) -> None:
    bad = REPO / "manifests" / "invalid" / "many-problems.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(bad)],
        env=subprocess_env(isolated),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"error: {bad}:")
    problems = [line for line in proc.stderr.splitlines() if WHERE.search(line)]
    assert len(problems) >= 5
    assert "Traceback" not in proc.stderr


# -- plan -----------------------------------------------------------------------------------


def test_plan_noop_is_one_line(
    tmp_path: Path, wheelhouse: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # delta's marker excludes this environment: nothing to install.
    manifest = manifest_for(tmp_path, wheelhouse, venv, ["alpha>=1", "delta; python_version < '3'"])
    state_dir = tmp_path / "state"
    before = tree_hash(venv)
    for extra in ([], ["--detailed-exitcode"]):
        code, out, err = run_cli(capsys, "--state-dir", state_dir, "plan", "-q", manifest, *extra)
        assert (code, err) == (0, "")
        assert out == "No changes: the environment already matches the manifest.\n"
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "plan", manifest)
    assert code == 0
    assert out.splitlines()[0] == f"e ({venv}, venv): up to date"
    assert out.splitlines()[-1] == "No changes: the environment already matches the manifest."
    code, document = plan_json(capsys, state_dir, manifest)
    assert code == 0
    assert document["environments"][0]["changes"] == []
    assert document["environments"][0]["satisfied"] == ["alpha>=1"]
    assert tree_hash(venv) == before


def test_plan_pending_changes(
    tmp_path: Path, wheelhouse: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = manifest_for(tmp_path, wheelhouse, venv, ["alpha>=1", "delta"])
    state_dir = tmp_path / "state"
    before = tree_hash(venv)
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "plan", "-q", manifest)
    assert (code, out) == (0, "Plan: 1 to install.\n")
    code, out, _ = run_cli(
        capsys, "--state-dir", state_dir, "plan", "-q", "--detailed-exitcode", manifest
    )
    assert (code, out) == (2, "Plan: 1 to install.\n")
    code, document = plan_json(capsys, state_dir, manifest, "--detailed-exitcode")
    assert code == 2
    (change,) = document["environments"][0]["changes"]
    assert (change["action"], change["manager"], change["name"], change["to"]) == (
        "install",
        "pip",
        "delta",
        "1.1",
    )
    assert (change["requested"], change["refused"]) == (True, False)
    assert document["summary"]["install"] == 1
    assert tree_hash(venv) == before


def test_plan_refused(
    tmp_path: Path, wheelhouse: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = manifest_for(tmp_path, wheelhouse, venv, ["alpha>=2"])
    state_dir = tmp_path / "state"
    assert run_cli(capsys, "--state-dir", state_dir, "baseline", "capture", "-q", manifest)[0] == 0
    before = tree_hash(venv)
    code, out, err = run_cli(capsys, "--state-dir", state_dir, "plan", manifest)
    assert (code, err) == (3, "")
    assert "! upgrade pip alpha 1.0 -> alpha>=2 (requested)\n" in out
    assert "refused: requested alpha>=2 would upgrade managed alpha 1.0" in out
    # What to do next: a hint, in text output only (JSON and -q are unchanged).
    assert out.splitlines()[-2:] == [
        "Plan: 1 to upgrade; 1 refused (apply would change nothing).",
        "  hint: e: alpha is installed at 1.0 and reconciler may not change it: pin alpha==1.0 "
        "in the manifest, or remove it",
    ]
    for extra in (["-q"], ["-q", "--detailed-exitcode"]):
        code, out, _ = run_cli(capsys, "--state-dir", state_dir, "plan", manifest, *extra)
        assert code == 3
        assert out == "Plan: 1 to upgrade; 1 refused (apply would change nothing).\n"
    code, document = plan_json(capsys, state_dir, manifest)
    assert code == 3
    (change,) = document["environments"][0]["changes"]
    assert (change["action"], change["name"], change["refused"]) == ("upgrade", "alpha", True)
    assert document["summary"]["refused"] == 1
    assert tree_hash(venv) == before


def test_an_upgrade_another_package_needs_is_not_shown_as_requested(
    tmp_path: Path, wheelhouse: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pip_install(venv, ["beta==1.0"], wheelhouse)
    manifest = manifest_for(tmp_path, wheelhouse, venv, ["beta>=1", "gamma"])
    state_dir = tmp_path / "state"
    assert run_cli(capsys, "--state-dir", state_dir, "baseline", "capture", "-q", manifest)[0] == 0
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "plan", manifest)
    assert code == 3
    # beta is declared, but `beta>=1` is met by 1.0: gamma is what needs 2.0.
    assert "  ! upgrade pip beta 1.0 -> 2.0\n      refused: gamma 1.0 requires beta>=2" in out
    assert "beta 1.0 -> 2.0 (requested)" not in out
    assert "  + install pip gamma 1.0 (requested)\n" in out
    assert out.splitlines()[-1] == (
        "  hint: e: gamma needs alpha 1.0, beta 1.0 to change: remove gamma from the manifest, "
        "or pin a version of gamma that works with them"
    )
    code, document = plan_json(capsys, state_dir, manifest)
    beta = next(c for c in document["environments"][0]["changes"] if c["name"] == "beta")
    assert (beta["requested"], beta["required_by"]) == (True, ["gamma"])  # JSON as before


def test_plan_out_file_matches_json(
    tmp_path: Path, wheelhouse: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = manifest_for(tmp_path, wheelhouse, venv, ["delta", "beta>=1"])
    state_dir = tmp_path / "state"
    out_file = tmp_path / "plans" / "plan.json"
    code, document = plan_json(capsys, state_dir, manifest, "--out", str(out_file))
    assert code == 0
    saved = json.loads(out_file.read_text(encoding="utf-8"))
    assert saved == document
    jsonschema.validate(saved, PLAN_SCHEMA)
    assert {c["name"] for c in saved["environments"][0]["changes"]} == {"beta", "delta"}
    assert saved["manifest"]["path"] == str(manifest)
    assert [p.name for p in out_file.parent.iterdir()] == ["plan.json"]  # no temp files left

    out_file.unlink()
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "plan", manifest, "--out", out_file)
    assert code == 0
    assert out.splitlines()[-1] == "Plan: 2 to install."
    assert json.loads(out_file.read_text(encoding="utf-8")) == document


def test_env_filter_and_unknown_env(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = make_venv(tmp_path / "a"), make_venv(tmp_path / "b")
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"a": {"prefix": a}, "b": {"prefix": b, "pip": ["delta"]}},
        wheelhouse=wheelhouse,
    )
    state_dir = tmp_path / "state"
    _, document = plan_json(capsys, state_dir, manifest, "--env", "b")
    assert [e["name"] for e in document["environments"]] == ["b"]
    _, document = plan_json(capsys, state_dir, manifest, "--env", "b", "--env", "a")
    assert [e["name"] for e in document["environments"]] == ["a", "b"]

    # Every command that takes --env: one error before anything is read or written.
    fresh = tmp_path / "fresh-state"
    images = tree_hash(a, b)
    commands = [
        "plan", "plan --json", "drift", "drift --json", "baseline capture", "baseline show",
        "apply", "apply --json", "apply --partial", "apply --background --wait 5",
    ]  # fmt: skip
    selections = {
        "no environment named 'nope'": ["--env", "nope"],
        "no environments named 'nope', 'x'": ["--env", "b", "--env", "nope", "--env", "x"],
    }
    for command in commands:
        name, *options = command.split()
        for message, selection in selections.items():
            code, out, err = run_cli(
                capsys, "--state-dir", fresh, name, *options, manifest, *selection
            )
            assert (code, out) == (1, ""), command
            assert err == f"error: {message} in {manifest}\n  hint: environments: a, b\n", command
    assert not fresh.exists()  # not even a cache
    assert tree_hash(a, b) == images


def test_missing_prefix_needs_create(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothere"
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": missing, "pip": ["alpha"]}}, wheelhouse=wheelhouse
    )
    code, out, err = run_cli(capsys, "--state-dir", tmp_path / "state", "plan", manifest)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: environment 'e': {missing} does not exist")
    assert "hint: add `create:" in err
    assert not missing.exists()

    manifest = write_manifest(
        tmp_path / "m2.yaml",
        {"e": {"prefix": missing, "create": {"venv": sys.executable}, "pip": ["alpha"]}},
        wheelhouse=wheelhouse,
    )
    code, document = plan_json(capsys, tmp_path / "state", manifest, "--detailed-exitcode")
    assert code == 2
    env = document["environments"][0]
    assert (env["exists"], env["changes"][0]["action"]) == (False, "create")
    assert not missing.exists()

    kernel = {"name": "tools", "display_name": "Python 3 (tools)"}
    manifest = write_manifest(
        tmp_path / "m3.yaml",
        {"e": {"prefix": missing, "create": {"venv": sys.executable}, "pip": ["alpha>=2"],
               "kernel": kernel}},
        wheelhouse=wheelhouse,
    )  # fmt: skip
    code, out, _ = run_cli(capsys, "--state-dir", tmp_path / "state", "plan", manifest)
    assert code == 0
    assert out.splitlines()[1:] == [
        f"  + create venv e (python {sys.executable})",
        "  + install pip alpha>=2 (requested)",
        "  + install pip ipykernel (requested)",
        "  + register kernel tools (Python 3 (tools))",
        "Plan: 1 to create, 2 to install, 1 kernel to register.",
    ]


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m reconciler ARGV`` with stdout and stderr on a pseudo-terminal."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *argv], stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


def test_colour_and_the_resolving_line_on_a_terminal_only(
    tmp_path: Path, wheelhouse: Path, venv: Path, isolated: dict[str, str]
) -> None:
    manifest = manifest_for(tmp_path, wheelhouse, venv, ["alpha>=2", "delta"])
    env = {**subprocess_env(isolated), "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    state = str(tmp_path / "state")
    assert subprocess.run(
        [sys.executable, "-m", "reconciler", "--state-dir", state, "baseline", "capture", "-q",
         str(manifest)], env=env, check=True,
    ).returncode == 0  # fmt: skip
    argv = ["--state-dir", state, "plan", str(manifest)]

    code, out = _on_a_terminal(argv, env)
    assert code == 3
    # While resolving: what, on stderr, then erased so the plan starts clean.
    assert out.startswith("resolving e (2 packages) ...\r\x1b[2K")
    assert "  \x1b[31m!\x1b[0m upgrade pip alpha 1.0 -> alpha>=2 (requested)\n" in out
    assert "  \x1b[32m+\x1b[0m install pip delta 1.1 (requested)\n" in out
    assert (
        "\x1b[1mPlan:\x1b[0m 1 to install, 1 to upgrade\x1b[31m; 1 refused (apply would change "
        "nothing)\x1b[0m.\n"
    ) in out

    code, out = _on_a_terminal(argv, {**env, "NO_COLOR": "1"})
    assert code == 3
    assert "\x1b[3" not in out and "\x1b[1m" not in out
    assert "  ! upgrade pip alpha 1.0 -> alpha>=2 (requested)\n" in out
    assert out.startswith("resolving e (2 packages) ...")  # progress is not colour

    plain = subprocess.run([sys.executable, "-m", "reconciler", *argv], env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert plain.returncode == 3
    assert "\x1b" not in plain.stdout + plain.stderr  # off a terminal: plain, no progress
    assert plain.stderr == ""
    forced = subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        env={**env, "FORCE_COLOR": "1"},
        capture_output=True,
        text=True,
    )
    # ipykernel sets FORCE_COLOR for every child of a notebook: not a request for colour.
    assert (forced.returncode, forced.stdout) == (3, plain.stdout)
    assert forced.stderr == ""
    code, out = _on_a_terminal([*argv, "-q"], env)
    assert (code, "resolving" in out) == (3, False)  # -q: the summary only
    assert out.startswith("\x1b[1mPlan:\x1b[0m 1 to install")
    code, out = _on_a_terminal([*argv, "--json"], env)
    assert code == 3
    document = out.split("\r\x1b[2K", 1)[1]  # stderr's progress line, then stdout's JSON
    assert "\x1b" not in document
    jsonschema.validate(json.loads(document), PLAN_SCHEMA)


# -- baseline and the state dir -------------------------------------------------------------


def test_baseline_capture_and_show(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["pytorchy ==1.0"], hybrid=True)
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    manifest = manifest_for(tmp_path, wheelhouse, prefix, [])
    state_dir = tmp_path / "state"

    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "baseline", "show", manifest)
    assert (code, out) == (0, f"e: no baseline recorded ({prefix})\n")
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "baseline", "show", manifest, "--json")
    assert json.loads(out) == {"format_version": "1", "environments": {"e": None}}

    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "baseline", "capture", manifest)
    assert (code, out) == (0, "e: baseline captured, 3 managed packages\n")
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "baseline", "show", manifest)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("e: 3 managed packages, captured ")
    assert re.fullmatch(r"  conda python 3\.\d+\.0 0", lines[1])
    assert lines[2:] == ["  conda pytorchy 1.0 0", "  pip   alpha 1.0"]
    code, out, _ = run_cli(capsys, "--state-dir", state_dir, "baseline", "show", manifest, "--json")
    packages = json.loads(out)["environments"]["e"]["packages"]
    assert sorted(packages) == ["conda:python", "conda:pytorchy", "pip:alpha"]
    assert packages["pip:alpha"] == {
        "name": "alpha",
        "manager": "pip",
        "version": "1.0",
        "build": "",
    }
    assert packages["conda:pytorchy"]["build"] == "0"
    assert "pip:torchy" not in packages  # shipped by conda pytorchy: one package


def test_capture_over_a_baseline_needs_force_and_says_what_would_change(
    tmp_path: Path, wheelhouse: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pip_install(venv, ["beta==1.0"], wheelhouse)
    manifest = manifest_for(tmp_path, wheelhouse, venv, [])
    state_dir = tmp_path / "state"
    capture = ("--state-dir", state_dir, "baseline", "capture", manifest)
    assert run_cli(capsys, *capture) == (0, "e: baseline captured, 2 managed packages\n", "")
    path = StateStore(state_dir).env_dir(venv) / "baseline.json"
    first = path.read_bytes()
    captured_at = json.loads(first)["captured_at"]
    assert run_cli(capsys, *capture) == (0, "e: baseline unchanged, 2 managed packages\n", "")
    assert path.read_bytes() == first

    # By hand since: delta and epsilon-pkg added, alpha upgraded, beta removed.
    pip_install(venv, ["delta==1.0", "epsilon-pkg", "alpha==2.0"], wheelhouse)
    subprocess.run(
        [uv_bin(), "pip", "uninstall", "-q", "--python", str(venv / "bin" / "python"), "beta"],
        check=True,
    )
    code, out, err = run_cli(capsys, *capture)
    assert (code, out) == (1, "")
    assert err == (
        f"error: e: a baseline was captured at {captured_at}; capturing again would make 2 "
        "packages managed (pip delta 1.0, pip epsilon-pkg 1.0); stop managing 1 package "
        "(pip beta 1.0); manage 1 package at another version (pip alpha 1.0 -> 2.0)\n"
        "nothing was captured\n"
        "  hint: packages installed by hand since would become managed (never changed by "
        "reconciler); `reconciler baseline capture --force` replaces the baseline\n"
    )
    assert path.read_bytes() == first
    code, out, err = run_cli(capsys, *capture, "--force")
    assert (code, out, err) == (0, "e: baseline replaced, 3 managed packages\n", "")
    replaced = json.loads(path.read_bytes())["packages"]
    assert sorted(replaced) == ["pip:alpha", "pip:delta", "pip:epsilon-pkg"]
    assert replaced["pip:alpha"]["version"] == "2.0"


def test_state_dir_option_and_variable(
    tmp_path: Path,
    wheelhouse: Path,
    venv: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = manifest_for(tmp_path, wheelhouse, venv, [])

    def captured(root: Path) -> bool:
        return StateStore(root).baseline(venv) is not None

    from_env = tmp_path / "from-env"
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(from_env))
    assert run_cli(capsys, "baseline", "capture", "-q", manifest)[0] == 0
    assert captured(from_env)

    global_opt, sub_opt = tmp_path / "global", tmp_path / "sub"
    assert run_cli(capsys, "--state-dir", global_opt, "baseline", "capture", manifest)[0] == 0
    assert run_cli(capsys, "baseline", "capture", manifest, "--state-dir", sub_opt)[0] == 0
    assert captured(global_opt) and captured(sub_opt)
    assert run_cli(capsys, "baseline", "show", manifest, "--state-dir", sub_opt)[1].startswith(
        "e: 1 managed package,"
    )

    empty = tmp_path / "empty"
    code, out, _ = run_cli(capsys, "baseline", "show", manifest, "--state-dir", empty)
    assert code == 0
    assert out == f"e: no baseline recorded ({venv})\n"  # the option wins over the variable

    monkeypatch.delenv("RECONCILER_STATE_DIR")
    home = Path(os.environ["HOME"])
    assert run_cli(capsys, "baseline", "capture", "-q", manifest)[0] == 0
    assert captured(home / ".local" / "state" / "reconciler")


def test_corrupt_baseline_is_reported(
    tmp_path: Path, wheelhouse: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = manifest_for(tmp_path, wheelhouse, venv, ["alpha"])
    state_dir = tmp_path / "state"
    assert run_cli(capsys, "--state-dir", state_dir, "baseline", "capture", "-q", manifest)[0] == 0
    path = StateStore(state_dir).env_dir(venv) / "baseline.json"
    path.write_text('{"format": 1, "packa')
    for command in ("plan", "drift"):
        code, out, err = run_cli(capsys, "--state-dir", state_dir, command, manifest)
        assert (code, out) == (1, ""), command
        assert err.startswith(f"error: state file {path} is unreadable or corrupt")
        assert "hint: run `reconciler baseline capture` to record it again" in err
        assert "Traceback" not in err
    # As the hint says: capturing again replaces it (capture does not read the old one).
    assert run_cli(capsys, "--state-dir", state_dir, "baseline", "capture", "-q", manifest)[0] == 0
    assert run_cli(capsys, "--state-dir", state_dir, "drift", manifest)[0] == 0


# -- entry points ---------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"reconciler {reconciler.__version__}\n"


def test_python_dash_m_subprocess(
    tmp_path: Path, wheelhouse: Path, venv: Path, isolated: dict[str, str]
) -> None:
    env = subprocess_env(isolated)
    version = subprocess.run(
        [sys.executable, "-m", "reconciler", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout == f"reconciler {reconciler.__version__}\n"

    manifest = manifest_for(tmp_path, wheelhouse, venv, ["alpha>=1", "delta"])
    state_dir = tmp_path / "state"
    plan = subprocess.run(
        [sys.executable, "-m", "reconciler", "--state-dir", str(state_dir), "plan", str(manifest),
         "--json", "--detailed-exitcode"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert plan.returncode == 2, plan.stderr
    document = json.loads(plan.stdout)
    jsonschema.validate(document, PLAN_SCHEMA)
    assert [c["name"] for c in document["environments"][0]["changes"]] == ["delta"]

    # RECONCILER_STATE_DIR from the environment reaches the subprocess.
    drift = subprocess.run(
        [sys.executable, "-m", "reconciler", "drift", str(manifest), "--json"],
        env={**env, "RECONCILER_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
    )
    assert drift.returncode == 0, drift.stderr
    jsonschema.validate(json.loads(drift.stdout), DRIFT_SCHEMA)
    assert (state_dir / "cache" / "read-cache.json").is_file()


def test_console_script_subprocess(tmp_path: Path, isolated: dict[str, str]) -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^([\w.-]+)\s*=\s*"([^"]+)"', section, re.MULTILINE))
    assert scripts == {"reconciler": "reconciler.entry:run"}
    entry = importlib.metadata.EntryPoint("reconciler", scripts["reconciler"], "console_scripts")
    from reconciler.entry import run as entry_run

    assert entry.load() is entry_run

    # The wrapper installers generate for a console_scripts entry point.
    module, attr = scripts["reconciler"].split(":")
    script = tmp_path / "bin" / "reconciler"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\n"
        "import re\nimport sys\n"
        f"from {module} import {attr}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({attr}())\n"
    )
    script.chmod(0o755)
    env = subprocess_env(isolated)
    version = subprocess.run([str(script), "--version"], env=env, capture_output=True, text=True)
    assert (version.returncode, version.stdout) == (0, f"reconciler {reconciler.__version__}\n")
    example = REPO / "manifests" / "venv.yaml"
    valid = subprocess.run([str(script), "validate", str(example)], env=env, capture_output=True,
                           text=True)  # fmt: skip
    assert (valid.returncode, valid.stdout) == (0, f"{example}: valid (1 environment)\n")
    usage = subprocess.run([str(script)], env=env, capture_output=True, text=True)
    assert usage.returncode == 1  # a usage error; 2 is "changes pending"
    assert usage.stderr.startswith("usage: reconciler ")


#: Runs reconciler.entry.run with main replaced by the code given as argv[1].
_RUN = (
    "import sys\n"
    "from reconciler import entry\n"
    "def main():\n"
    "    exec(sys.argv[1], globals())\n"
    "    return 3\n"
    "entry.main = main\n"
    "entry.run()\n"
)


def _run_entry(body: str, isolated: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN, body], env=subprocess_env(isolated), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_the_console_script_exits_with_main_s_code_its_output_and_exit_handlers(
    isolated: dict[str, str],
) -> None:
    """The interpreter is not torn down, but nothing teardown would do is lost: the
    buffered output arrives whole, the exit handlers run (and what they print)."""
    body = (
        "import atexit; sys.stdout.write('x' * 200_000); sys.stderr.write('err')\n"
        "atexit.register(lambda: print('handler ran'))"
    )
    done = _run_entry(body, isolated)
    assert done.returncode == 3
    assert done.stdout == "x" * 200_000 + "handler ran\n"
    assert done.stderr == "err"


def test_the_console_script_waits_for_a_thread_still_running(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    marker = tmp_path / "written"
    body = (
        "import threading, time\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        f"    open({str(marker)!r}, 'w').write('done')\n"
        "threading.Thread(target=late).start()"
    )
    done = _run_entry(body, isolated)
    assert done.returncode == 3, done.stderr
    assert marker.read_text() == "done"


def test_usage_errors_exit_1_not_the_pending_code(capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        (): "the following arguments are required: COMMAND",
        ("plan",): "the following arguments are required: manifest",
        ("plan", "m.yaml", "--no-such-option"): "unrecognized arguments: --no-such-option",
        ("baseline", "keep", "m.yaml"): "argument action: invalid choice: 'keep'",
        ("apply", "m.yaml", "--lock-timeout", "soon"): (
            "argument --lock-timeout: invalid number of seconds: 'soon'"
        ),
        ("apply", "m.yaml", "--lock-timeout", "-1"): (
            "argument --lock-timeout: must be 0 or more seconds, not '-1'"
        ),
        ("apply", "m.yaml", "--lock-timeout=nan"): (
            "argument --lock-timeout: must be 0 or more seconds, not 'nan'"
        ),
        ("add", "m.yaml", "x", "--lock-timeout", "inf"): (
            "argument --lock-timeout: must be 0 or more seconds, not 'inf'"
        ),
        ("frobnicate",): "argument COMMAND: invalid choice: 'frobnicate'",
    }
    for argv, message in cases.items():
        with pytest.raises(SystemExit) as exited:
            main(list(argv))
        err = capsys.readouterr().err
        assert exited.value.code == 1, argv
        assert err.startswith("usage: reconciler"), argv
        assert message in err.splitlines()[-1], (argv, err)


def _parsers() -> list[Any]:
    from reconciler.cli import _parser

    root = _parser()
    found = [root]
    for action in root._actions:
        if action.choices and isinstance(action.choices, dict):
            found += action.choices.values()
    return found


def test_the_lazy_parser_of_a_run_says_what_the_full_one_says(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() adds only the parsed command's arguments (issue 13: start-up cost); help,
    # errors and parsed values must not change.
    import argparse

    from reconciler.cli import _parser

    monkeypatch.setenv("COLUMNS", "100")
    full = _parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    commands = sorted(sub.choices)
    assert len(commands) == 13
    failing = [["-h"], [], ["nope"], ["plan"], ["plan", "m.yaml", "--bogus"]]
    failing += [["apply", "m.yaml", "--lock-timeout", "soon"], ["baseline", "keep", "m.yaml"]]
    failing += [["-q", c, "--help"] for c in commands]
    for argv in failing:
        said = []
        for lazy in (False, True):
            with pytest.raises(SystemExit) as exited:
                _parser(lazy=lazy).parse_args(argv)
            said.append((exited.value.code, capsys.readouterr()))
        assert said[0] == said[1], argv
        assert said[1][1].out or said[1][1].err, argv
    parsed = [["plan", "m.yaml", "--env", "a", "--json"], ["-v", "apply", "m.yaml", "--partial"]]
    parsed += [["add", "m.yaml", "x>=1", "--conda"], ["remove", "m.yaml", "x"], ["adopt", "m.yaml"]]
    parsed += [["baseline", "show", "m.yaml"], ["--state-dir", "s", "status"], ["demo"]]
    for argv in parsed:
        assert vars(_parser(lazy=True).parse_args(argv)) == vars(_parser().parse_args(argv))
    lazy = _parser(lazy=True)
    lazy.parse_args(["plan", "m.yaml"])
    lazy_sub = next(a for a in lazy._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(lazy_sub.pending) == [c for c in commands if c != "plan"]  # type: ignore[attr-defined]
    assert [name for name, made in lazy_sub.choices.items() if made is not None] == ["plan"]


def test_a_plain_plan_or_apply_is_read_as_argparse_reads_it() -> None:
    # issue 13: the plain calls (the entry point's shapes, the notebook's) are read without
    # argparse; whatever reconciler.cli_args accepts must give argparse's values exactly.
    from itertools import permutations

    from reconciler import cli
    from reconciler.cli_args import plain_arguments

    parser, handlers = cli._parser(), {"plan": cli._plan, "apply": cli._apply}
    heads = [[], ["--state-dir", "s"], ["--state-dir=~/s"], ["-q"], ["--quiet", "-v"]]
    heads += [["--verbose"], ["--notebook"], ["--state-dir", "s", "-q", "--notebook"]]
    named = [["--env", "a"], ["--env=b"]]
    own = {
        "plan": [
            *named,
            ["--env-prefix", "p"],
            ["--env-prefix=p/q"],
            ["--json"],
            ["--detailed-exitcode"],
        ],
        "apply": [
            *named,
            ["--lock-timeout", "5"],
            ["--lock-timeout=2.5"],
            ["--lock-timeout", "1e3"],
            ["--background"],
            ["--wait", "5"],
            ["--wait=0.5"],
            ["--detached"],
        ],
    }
    common = [["-q"], ["-v"], ["--notebook"], ["--state-dir", "t"], ["--quiet"]]
    odd = [["--bogus"], ["-qv"], ["--env"], [""], ["-5"], ["--"], ["--js"], ["--out", "f"]]
    odd += [["--lock-timeout", "soon"], ["--env", "-x"], ["m2.yaml"], ["--env-prefix="]]
    odd += [["--lock-timeout=-1"], ["--lock-timeout", "nan"], ["--lock-timeout", "inf"]]
    odd += [["--json=1"], ["--version"], ["--partial"], ["--locked"], ["-h"]]
    odd += [["--wait", "nan"], ["--wait=-1"], ["--background=1"]]
    accepted = 0
    for command in ("plan", "apply"):
        pieces = own[command] + common + odd
        for head in heads:
            for k in (0, 1, 2):
                for chosen in permutations(pieces, k):
                    for where in range(k + 1):  # the manifest among the options
                        before = [t for p in chosen[:where] for t in p]
                        after = [t for p in chosen[where:] for t in p]
                        argv = [*head, command, *before, "m.yaml", *after]
                        plain = plain_arguments(argv, handlers)
                        if plain is not None:
                            accepted += 1
                            assert vars(plain) == vars(parser.parse_args(argv)), argv
    assert accepted > 2000
    # What the entry point's fast path and the notebook run is read without argparse.
    for argv in (
        ["apply", "m.yaml"], ["plan", "m.yaml"], ["--state-dir", "s", "-q", "apply", "m.yaml"],
        ["plan", "m.yaml", "--env", "a", "--env", "b", "--json", "--detailed-exitcode"],
        ["--notebook", "plan", "m.yaml", "--env-prefix", "/opt/conda"],
        ["--notebook", "apply", "m.yaml", "--env", "a"], ["apply", "m.yaml", "--lock-timeout", "9"],
        ["apply", "m.yaml", "--background", "--wait", "60"],
        ["apply", "/m.yaml", "--detached", "--lock-timeout", "60.0"],
    ):  # fmt: skip
        assert plain_arguments(argv, handlers) is not None, argv


def test_every_option_and_argument_has_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: help lines are whole

    parsers = _parsers()
    assert len(parsers) >= 8  # reconciler and each command
    for parser in parsers:
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help, (parser.prog, action.dest)
    for command in ("plan", "apply", "drift", "baseline", "status"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        if command != "status":
            assert "--env NAME" in out and "only this environment of the manifest" in out
            assert "the manifest file (YAML, version: 1)" in out
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    assert re.search(r"--json +print the status file as JSON\n", capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["baseline", "--help"])
    assert "capture: record what is installed now as the managed set" in capsys.readouterr().out
