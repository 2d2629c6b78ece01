"""``reconciler apply`` in-process on real environments (issue "Apply").

Real venvs and hybrid venv + conda prefixes from the test wheelhouse and
channel, real uv / pip / py-rattler installs, real Jupyter kernelspec lookup.
Every command runs through ``reconciler.cli.main`` with ``--state-dir``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from jupyter_client.kernelspec import KernelSpecManager

from reconciler.state.environment import read_state
from reconciler.state.store import StateStore
from tests.support.conda import PYTHON_VERSION
from tests.support.envs import (
    base_interpreter,
    env_python,
    make_conda_prefix,
    make_venv,
    pip_install,
    tree_hash,
)
from tests.support.manifests import SITE, run_cli, write_manifest
from tests.support.wheels import build_wheel

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


# -- helpers shared with test_apply_processes ---------------------------------------------


def make_base_interpreter(dest: Path) -> Path:
    """A base Python installation at ``dest`` whose site-packages has ipykernel.

    The test interpreter is itself usually a venv, so a ``--system-site-packages``
    venv made from it sees the *base* installation's site-packages, which lacks
    ipykernel. This builds what SageMaker's ``/opt/conda/bin/python`` is: a real
    installation with ipykernel. The interpreter binary is copied (so CPython
    finds its prefix at ``dest``), the standard library and ``libpython`` are
    symlinked, and the site directory (``site-packages``, and Debian's
    ``python3/dist-packages``) is the test interpreter's, which has ipykernel
    and jupyter_client. Returns ``dest/bin/pythonX.Y``.
    """
    exe = base_interpreter(dest)
    purelib = Path(sysconfig.get_path("purelib"))
    (dest / "lib" / f"python{PY}" / "site-packages").symlink_to(purelib)
    (dest / "lib" / "python3").mkdir()
    (dest / "lib" / "python3" / "dist-packages").symlink_to(purelib)
    return exe


def make_kernel_venv(tmp: Path) -> Path:
    """``python -m venv --system-site-packages`` from a base that has ipykernel."""
    base = make_base_interpreter(tmp / "base-python")
    return make_venv(tmp / "kernel-env", system_site_packages=True, python=str(base))


def managed_paths(prefix: Path) -> list[Path]:
    """Every conda-meta record and dist-info directory in ``prefix`` now."""
    paths = sorted((prefix / "conda-meta").glob("*.json"))
    return paths + sorted((prefix / SITE).glob("*.dist-info"))


def env_state(state: Path, prefix: Path, name: str) -> Any:
    """A JSON file of one environment's state dir (``baseline``, ``owned``, ``journal``)."""
    path = StateStore(state).env_dir(prefix) / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def env_state_files(state: Path, prefix: Path) -> set[str]:
    """Names of the files in one environment's state dir (empty when it does not exist)."""
    directory = StateStore(state).env_dir(prefix)
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def run_python(prefix: Path, code: str, env: dict[str, str]) -> str:
    """Run ``code`` with the environment's own interpreter; its stdout."""
    proc = subprocess.run(
        [str(env_python(prefix)), "-c", code], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def stat_files(root: Path) -> dict[str, tuple[int, int]]:
    """``(inode, mtime_ns)`` of every file below ``root``: any write shows up here."""
    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _cli(
    capsys: pytest.CaptureFixture[str], state: Path, *argv: str | Path
) -> tuple[int, str, str]:
    return run_cli(capsys, "--state-dir", state, *argv)


def _hybrid(path: Path, channel: Path, wheelhouse: Path, pip: list[str]) -> Path:
    prefix = make_conda_prefix(path, channel, ["libfoo ==1.0", "pyfoo ==1.0"], hybrid=True)
    if pip:
        pip_install(prefix, pip, wheelhouse)
    return prefix


# -- apply -----------------------------------------------------------------------------------


def test_apply_adds_conda_and_pip_packages_and_all_to_two_environments(
    tmp_path: Path,
    wheelhouse: Path,
    channel: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hybrid = _hybrid(tmp_path / "hybrid", channel, wheelhouse, ["alpha==1.0"])
    venv = make_venv(tmp_path / "venv")
    pip_install(venv, ["beta==1.0", "alpha==1.0"], wheelhouse)
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {
            "hybrid": {"prefix": hybrid, "conda": ["condaonly"], "pip": ["delta==1.0"]},
            "venv": {"prefix": venv, "pip": ["delta"]},
        },
        wheelhouse=wheelhouse,
        channel=channel,
        all={"pip": ["epsilon-pkg"]},
    )
    image = {p: set(read_state(p).packages()) for p in (hybrid, venv)}
    managed = {p: managed_paths(p) for p in (hybrid, venv)}
    managed_before = {p: tree_hash(*paths) for p, paths in managed.items()}
    state = tmp_path / "state"

    code, out, err = _cli(capsys, state, "apply", manifest)

    assert code == 0, out + err
    assert "Applied 2 environments; log: " in out
    # Really installed: the conda record and its payload, the pip distributions.
    assert (hybrid / "conda-meta" / "condaonly-1.1-0.json").is_file()
    assert (hybrid / "share" / "condaonly" / "VERSION").read_text() == "1.1\n"
    versions = "import delta, epsilon_pkg; print(delta.__version__, epsilon_pkg.__version__)"
    assert run_python(hybrid, versions, isolated) == "1.0 1.0"
    assert run_python(venv, versions, isolated) == "1.1 1.0"
    assert (hybrid / SITE / "Epsilon_Pkg-1.0.dist-info" / "RECORD").is_file()
    # owned.json: exactly what this apply installed, at the installed versions.
    assert env_state(state, hybrid, "owned")["packages"] == {
        "conda:condaonly": {"name": "condaonly", "manager": "conda", "version": "1.1"},
        "pip:delta": {"name": "delta", "manager": "pip", "version": "1.0"},
        "pip:epsilon-pkg": {"name": "epsilon-pkg", "manager": "pip", "version": "1.0"},
    }
    assert env_state(state, venv, "owned")["packages"] == {
        "pip:delta": {"name": "delta", "manager": "pip", "version": "1.1"},
        "pip:epsilon-pkg": {"name": "epsilon-pkg", "manager": "pip", "version": "1.0"},
    }
    # baseline.json: captured before the change, so the image and nothing new.
    for prefix in (hybrid, venv):
        baseline = env_state(state, prefix, "baseline")["packages"]
        assert set(baseline) == image[prefix]
        assert not {"pip:delta", "pip:epsilon-pkg", "conda:condaonly"} & set(baseline)
        assert env_state(state, prefix, "journal")["status"] == "done"
        # Verification: every managed record and dist-info is byte-identical.
        assert tree_hash(*managed[prefix]) == managed_before[prefix]
    assert {"conda:libfoo", "conda:pyfoo", "conda:python", "pip:alpha"} <= image[hybrid]
    assert image[venv] == {"pip:alpha", "pip:beta"}


def managed_paths_from(prefix: Path, keys: set[str]) -> list[Path]:
    """The conda-meta record and dist-info paths of the packages ``keys``."""
    state = read_state(prefix)
    paths: list[Path] = []
    for key, pkg in sorted(state.packages().items()):
        if key not in keys:
            continue
        if pkg.manager == "conda":
            paths.append(prefix / "conda-meta" / state.conda[pkg.name].filename)
        if pkg.dist is not None:
            paths.append(prefix / SITE / pkg.dist.directory)
    return paths


def test_second_apply_is_a_noop_that_writes_nothing(
    tmp_path: Path,
    wheelhouse: Path,
    channel: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hybrid = _hybrid(tmp_path / "hybrid", channel, wheelhouse, [])
    # A venv nested in the hybrid prefix, as /opt/conda/envs/x lies in /opt/conda.
    nested = make_venv(hybrid / "envs" / "nested")
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {
            "hybrid": {"prefix": hybrid, "conda": ["condaonly>=1"], "pip": ["delta"]},
            "nested": {"prefix": nested, "pip": ["alpha"]},
        },
        wheelhouse=wheelhouse,
        channel=channel,
    )
    state = tmp_path / "state"
    code, out, err = _cli(capsys, state, "apply", manifest)
    assert code == 0, out + err
    before = tree_hash(hybrid, state)
    stamps = stat_files(state)

    code, out, err = _cli(capsys, state, "apply", manifest)

    assert code == 0, out + err
    assert out.splitlines() == ["No changes: 2 environments already match the manifest."]
    assert err == ""
    assert tree_hash(hybrid, state) == before
    assert stat_files(state) == stamps  # not even rewritten with the same bytes


def test_transitive_refusal_changes_nothing(
    tmp_path: Path,
    wheelhouse: Path,
    channel: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hybrid = _hybrid(tmp_path / "hybrid", channel, wheelhouse, ["alpha==1.0"])
    state = tmp_path / "state"
    refused = write_manifest(
        tmp_path / "refused.yaml",
        {"hybrid": {"prefix": hybrid, "pip": ["gamma"]}},
        wheelhouse=wheelhouse,
        channel=channel,
    )
    image = tree_hash(hybrid)

    # On a fresh state dir: nothing in the environment, and in the state dir only the
    # status file, which `reconciler status` shows (no lock, no caches, no log).
    code, out, err = _cli(capsys, state, "apply", refused, "--json")
    assert code == 3, out + err
    doc = json.loads(out)
    changes = {c["name"]: c for c in doc["environments"][0]["changes"]}
    assert changes["alpha"]["refused"] and changes["alpha"]["from"] == "1.0"
    assert changes["alpha"]["action"] == "upgrade" and changes["alpha"]["required_by"]
    assert doc["environments"][0]["result"]["status"] == "refused"
    assert doc["log"] is None
    assert tree_hash(hybrid) == image
    assert [p.relative_to(state).as_posix() for p in state.rglob("*")] == ["status.json"]
    code, out, _ = _cli(capsys, state, "apply", refused)
    assert code == 3
    assert "log:" not in out  # no log was written, so none is named
    assert out.splitlines()[-3:] == [
        "  hint: hybrid: gamma needs alpha 1.0 to change: remove gamma from the "
        "manifest, or pin a version of gamma that works with it",
        "hybrid: refused: 1 refused change",
        "Applied 0 environments.",
    ]
    assert [p.relative_to(state).as_posix() for p in state.rglob("*")] == ["status.json"]
    assert _cli(capsys, state, "status")[1] == (
        f"apply refused (pid {os.getpid()}, "
        f"started {json.loads((state / 'status.json').read_text())['started_at']})\n"
        "  hybrid: refused: 1 refused change\n"
    )

    # After a successful apply, and the `plan` a user reviews: byte-identical, state included.
    fine = write_manifest(
        tmp_path / "fine.yaml",
        {"hybrid": {"prefix": hybrid, "pip": ["delta"]}},
        wheelhouse=wheelhouse,
        channel=channel,
    )
    assert _cli(capsys, state, "apply", fine)[0] == 0
    refused = write_manifest(
        tmp_path / "refused.yaml",
        {"hybrid": {"prefix": hybrid, "pip": ["delta", "gamma"]}},
        wheelhouse=wheelhouse,
        channel=channel,
    )
    code, out, _ = _cli(capsys, state, "plan", refused)
    assert code == 3 and "alpha" in out
    assert _cli(capsys, state, "status")[1].startswith("apply finished")
    before = tree_hash(hybrid), stat_files(state)

    code, out, err = _cli(capsys, state, "apply", refused)

    assert code == 3, out + err
    assert "refused" in out and "gamma" in out
    after = tree_hash(hybrid), stat_files(state)
    assert after[0] == before[0]
    assert {k: v for k, v in after[1].items() if k != "status.json"} == {
        k: v for k, v in before[1].items() if k != "status.json"
    }
    # `status` shows this refused apply, not the successful one before it.
    code, out, _ = _cli(capsys, state, "status")
    assert (code, out.splitlines()[0].split(" (")[0]) == (3, "apply refused")
    assert out.splitlines()[1:] == ["  hybrid: refused: 1 refused change"]


def test_partial_applies_the_environments_without_refusals(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused = make_venv(tmp_path / "refused")
    pip_install(refused, ["alpha==1.0"], wheelhouse)
    fine = make_venv(tmp_path / "fine")
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {
            "refused": {"prefix": refused, "pip": ["gamma"]},
            "fine": {"prefix": fine, "pip": ["delta"]},
        },
        wheelhouse=wheelhouse,
    )
    state = tmp_path / "state"
    images = (tree_hash(refused), tree_hash(fine))

    code, out, err = _cli(capsys, state, "apply", manifest)
    assert code == 3, out + err
    assert "fine: skipped" in out
    assert (tree_hash(refused), tree_hash(fine)) == images

    code, out, err = _cli(capsys, state, "apply", manifest, "--partial")

    assert code == 3, out + err
    assert "refused: refused" in out
    # The summary says what --partial does, not "apply would change nothing".
    assert "Plan: 3 to install, 1 to upgrade; 1 refused (--partial applies fine only).\n" in out
    assert "apply would change nothing" not in out
    assert out.splitlines()[-1].startswith("Applied 1 environment; log: ")
    assert Path(out.splitlines()[-1].split("log: ")[1]).is_file()
    assert run_python(fine, "import delta; print(delta.__version__)", isolated) == "1.1"
    assert env_state(state, fine, "owned")["packages"].keys() == {"pip:delta"}
    assert env_state(state, fine, "journal")["status"] == "done"
    assert tree_hash(refused) == images[0]
    assert not env_state_files(state, refused) & {"baseline.json", "owned.json", "journal.json"}


def test_status_names_the_log_by_its_absolute_path(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    venv = make_venv(tmp_path / "venv")
    manifest = write_manifest(
        tmp_path / "manifest.yaml", {"e": {"prefix": venv, "pip": ["delta"]}}, wheelhouse=wheelhouse
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run_cli(capsys, "--state-dir", "state", "apply", manifest)  # relative
    assert code == 0, out + err
    log = work / "state" / "logs"
    (written,) = log.iterdir()
    assert out.splitlines()[-1] == f"Applied 1 environment; log: {written}"
    monkeypatch.chdir(tmp_path)  # elsewhere: the path printed still works
    code, out, _ = run_cli(capsys, "--state-dir", work / "state", "status")
    assert code == 0
    assert out.splitlines()[-1] == f"  log: {written}"
    code, out, _ = run_cli(capsys, "--state-dir", work / "state", "status", "--json")
    document = json.loads(out)
    assert (document["format_version"], document["log"]) == ("1", str(written))
    assert Path(document["log"]).is_file()


def test_stale_plan_is_refused_and_a_fresh_plan_applies_exactly(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    wheels = Path(shutil.copytree(wheelhouse, tmp_path / "wheels"))
    venv = make_venv(tmp_path / "venv")
    pip_install(venv, ["alpha==1.0"], wheels)
    manifest = write_manifest(
        tmp_path / "manifest.yaml", {"venv": {"prefix": venv, "pip": ["delta"]}}, wheelhouse=wheels
    )
    state = tmp_path / "state"
    stale = tmp_path / "stale.json"
    assert _cli(capsys, state, "plan", manifest, "--out", stale)[0] == 0
    pip_install(venv, ["epsilon-pkg"], wheels)  # by hand, after the plan
    changed = tree_hash(venv)

    code, out, err = _cli(capsys, state, "apply", "--plan", stale)

    assert code == 1, out + err
    assert "stale plan" in err
    assert tree_hash(venv) == changed
    assert not env_state_files(state, venv) & {"baseline.json", "owned.json", "journal.json"}

    fresh = tmp_path / "fresh.json"
    assert _cli(capsys, state, "plan", manifest, "--out", fresh)[0] == 0
    planned = json.loads(fresh.read_text())["environments"][0]["changes"]
    assert [(c["action"], c["name"], c["to"]) for c in planned] == [("install", "delta", "1.1")]
    build_wheel(wheels, "delta", "1.2")  # published after the review: must not be picked

    code, out, err = _cli(capsys, state, "apply", "--plan", fresh)

    assert code == 0, out + err
    assert run_python(venv, "import delta; print(delta.__version__)", isolated) == "1.1"
    assert env_state(state, venv, "owned")["packages"] == {
        "pip:delta": {"name": "delta", "manager": "pip", "version": "1.1"}
    }
    assert "pip:epsilon-pkg" in env_state(state, venv, "baseline")["packages"]


def test_env_narrows_a_saved_plan(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = make_venv(tmp_path / "a"), make_venv(tmp_path / "b")
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {"a": {"prefix": a, "pip": ["delta"]}, "b": {"prefix": b, "pip": ["delta"]}},
        wheelhouse=wheelhouse,
    )
    state = tmp_path / "state"
    saved = tmp_path / "plan.json"
    assert _cli(capsys, state, "plan", manifest, "--out", saved)[0] == 0
    before = tree_hash(a)

    code, out, err = _cli(capsys, state, "apply", "--plan", saved, "--env", "b")

    assert (code, err) == (0, ""), out + err
    assert run_python(b, "import delta; print(delta.__version__)", isolated) == "1.1"
    assert tree_hash(a) == before
    assert out.splitlines()[-1].startswith("Applied 1 environment; log: ")


def test_owned_packages_move_while_managed_bytes_stay(
    tmp_path: Path,
    wheelhouse: Path,
    channel: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hybrid = _hybrid(tmp_path / "hybrid", channel, wheelhouse, ["alpha==2.0"])
    state = tmp_path / "state"
    first = write_manifest(
        tmp_path / "first.yaml",
        {"hybrid": {"prefix": hybrid, "conda": ["condaonly ==1.0"], "pip": ["beta==1.0"]}},
        wheelhouse=wheelhouse,
        channel=channel,
    )
    assert _cli(capsys, state, "apply", first)[0] == 0
    image = set(env_state(state, hybrid, "baseline")["packages"])
    managed = managed_paths_from(hybrid, image)
    assert len(managed) == 5  # libfoo, pyfoo (+ its dist-info), python, alpha
    before = tree_hash(*managed)
    # gamma needs beta>=2: the owned beta 1.0 may be upgraded, the owned condaonly too.
    second = write_manifest(
        tmp_path / "second.yaml",
        {"hybrid": {"prefix": hybrid, "conda": ["condaonly ==1.1"], "pip": ["gamma"]}},
        wheelhouse=wheelhouse,
        channel=channel,
    )

    code, out, err = _cli(capsys, state, "apply", second)

    assert code == 0, out + err
    assert "~ upgrade pip beta 1.0 -> 2.0 (required by gamma)\n" in out
    assert "~ upgrade conda condaonly 1.0 -> 1.1 (requested)" in out
    assert tree_hash(*managed) == before
    owned = env_state(state, hybrid, "owned")["packages"]
    assert {k: v["version"] for k, v in owned.items()} == {
        "conda:condaonly": "1.1",
        "pip:beta": "2.0",
        "pip:gamma": "1.0",
    }
    assert (hybrid / "share" / "condaonly" / "VERSION").read_text() == "1.1\n"
    assert run_python(hybrid, "import beta, gamma; print(beta.__version__)", isolated) == "2.0"


def test_the_record_read_ahead_starts_once_the_installer_runs_and_verify_is_not_journaled(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The RECORDs the verification asks about are read while the installer runs, from
    its start on (read before, they held the interpreter lock while the installs were
    started); the journal names the pip step, the last that changed the environment."""
    from reconciler.apply import execute
    from reconciler.backends import process

    venv = make_venv(tmp_path / "venv")
    pip_install(venv, ["alpha==1.0"], wheelhouse)  # managed: its RECORD is read ahead
    manifest = write_manifest(
        tmp_path / "m.yaml", {"venv": {"prefix": venv, "pip": ["beta==1.0"]}}, wheelhouse=wheelhouse
    )
    started: list[str] = []
    popen = process.subprocess.Popen

    def spawn(args: Any, **kwargs: Any) -> Any:
        started.append("dry run" if "--dry-run" in args else "install")
        return popen(args, **kwargs)

    scan = execute.RecordScan.start

    def read_ahead(*args: Any) -> Any:
        started.append("read-ahead")
        return scan(*args)

    monkeypatch.setattr(process.subprocess, "Popen", spawn)
    monkeypatch.setattr(execute.RecordScan, "start", read_ahead)
    state = tmp_path / "state"

    code, out, err = _cli(capsys, state, "apply", manifest)

    assert code == 0, out + err
    assert started == ["dry run", "install", "read-ahead"]
    journal = env_state(state, venv, "journal")
    assert (journal["status"], journal["step"]) == ("done", "pip")


def test_the_environments_of_a_generation_start_their_first_process_together() -> None:
    """No environment passes the start gate before the last one arrives; one that
    arrives twice counts once; one that never arrives holds the others only up to the
    gate's timeout."""
    import threading

    from reconciler.apply.schedule import StartGate

    gate = StartGate(3)
    passed: list[str] = []

    def arrive(name: str, delay: float) -> None:
        time.sleep(delay)
        assert gate.arrive(name)
        assert not gate.arrive(name)  # (no second count, no second wait)
        passed.append(name)

    threads = [
        threading.Thread(target=arrive, args=(n, d))
        for n, d in (("a", 0), ("b", 0.01), ("c", 0.05))
    ]
    for t in threads:
        t.start()
    time.sleep(0.03)
    assert passed == []  # a and b wait for c
    for t in threads:
        t.join()
    assert sorted(passed) == ["a", "b", "c"]

    lonely = StartGate(2)  # the other environment failed before its first process
    started = time.monotonic()
    lonely.arrive("a")
    assert StartGate.TIMEOUT <= time.monotonic() - started < StartGate.TIMEOUT + 0.5


def test_the_status_is_written_at_the_first_start_and_then_with_each_first_step(
    tmp_path: Path,
) -> None:
    """The apply's first environment start is written (a kill before any step leaves
    this apply's status, not the one before); a later environment's start is written
    with its first step, which the apply reports right after it."""
    from reconciler.apply.report import Reporter
    from reconciler.apply.status import StatusReporter

    path = tmp_path / "status.json"
    reporter = StatusReporter(path, Reporter())
    reporter.environment_started("image", 2)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["state"] == "running" and doc["environments"]["image"]["status"] == "running"
    written = path.stat().st_ino
    reporter.environment_started("venv-a", 2)
    assert path.stat().st_ino == written  # not written again
    reporter.step("venv-a", 1, "pip (uv): downloading and installing 5 packages")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["environments"]["venv-a"]["status"] == "running"
    assert doc["current"] == [
        "image: ",
        "venv-a: pip (uv): downloading and installing 5 packages",
    ]
    assert (doc["steps_total"], doc["steps_done"]) == (4, 0)


def test_the_status_reporter_takes_events_from_the_environments_threads_at_once(
    tmp_path: Path,
) -> None:
    """The environments' threads report at once: an environment added while another
    thread writes the file never breaks that write (the dictionary it reads)."""
    import threading

    from reconciler.apply.report import Reporter
    from reconciler.apply.status import StatusReporter

    reporter = StatusReporter(tmp_path / "status.json", Reporter())
    failures: list[BaseException] = []

    def report(thread: int) -> None:
        try:
            for i in range(120):
                name = f"env-{thread}-{i}"
                reporter.environment_started(name, 1)
                reporter.step(name, 1, "pip")
                reporter.environment_finished(name, "done", "")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=report, args=(t,)) for t in range(6)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads switch at every chance
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    doc = json.loads((tmp_path / "status.json").read_text(encoding="utf-8"))
    assert len(doc["environments"]) == 720


def test_a_stop_asked_while_an_environment_waits_at_the_start_gate_changes_nothing(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGTERM's stop request that comes while an environment waits for the others
    at the start gate is honoured there: its installer never starts."""
    from reconciler import faults
    from reconciler.apply import execute
    from reconciler.apply.schedule import StartGate

    fast, slow = make_venv(tmp_path / "fast"), make_venv(tmp_path / "slow")
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {
            "fast": {"prefix": fast, "pip": ["alpha==1.0"]},
            "slow": {"prefix": slow, "pip": ["alpha==1.0"]},
        },
        wheelhouse=wheelhouse,
    )
    arrive = StartGate.arrive

    def arrive_then_stop(gate: StartGate, name: str) -> bool:
        if name == "slow":  # the other one waits at the gate meanwhile
            time.sleep(0.03)
            faults.request_stop(15)
        return arrive(gate, name)

    installs: list[str] = []
    install = execute._install
    monkeypatch.setattr(StartGate, "arrive", arrive_then_stop)
    monkeypatch.setattr(execute, "_install", lambda *a: installs.append("x") or install(*a))
    try:
        code, out, err = _cli(capsys, tmp_path / "state", "apply", manifest)
    finally:
        faults.clear_stop()
    assert code != 0, out + err
    assert installs == []
    assert "stopped by" in out + err and "before changing anything" in out + err
    for prefix in (fast, slow):
        assert not (prefix / SITE / "alpha-1.0.dist-info").exists()


# -- kernels and new environments --------------------------------------------------------


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_new_venv_with_kernel_is_registered_for_jupyter(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The standard wheelhouse has no ipykernel: a stub wheel stands in for it here
    # (test_apply_processes starts a real kernel).
    stubs = tmp_path / "stubs"
    build_wheel(stubs, "ipykernel", "6.29.5")
    prefix = tmp_path / "envs" / "fresh"
    manifest = _write(
        tmp_path / "manifest.yaml",
        {
            "version": 1,
            "defaults": {"pip": {"no_index": True, "find_links": [str(wheelhouse), str(stubs)]}},
            "environments": {
                "fresh": {
                    "prefix": str(prefix),
                    "create": {"venv": sys.executable},
                    "pip": ["delta==1.0"],
                    "kernel": {"name": "fresh-env", "display_name": "Python (fresh)"},
                }
            },
        },
    )
    state = tmp_path / "state"

    code, out, err = _cli(capsys, state, "apply", manifest)

    assert code == 0, out + err
    spec = KernelSpecManager().get_kernel_spec("fresh-env")
    python = prefix / "bin" / "python"
    assert spec.argv[0] == str(python) and Path(spec.argv[0]).is_absolute()
    assert spec.argv[1:3] == ["-m", "ipykernel_launcher"]
    assert spec.display_name == "Python (fresh)"
    assert Path(spec.resource_dir).parent == Path(isolated["HOME"], ".local/share/jupyter/kernels")
    assert (
        run_python(prefix, "import delta, ipykernel; print(delta.__version__)", isolated) == "1.0"
    )
    assert (prefix / "pyvenv.cfg").is_file()
    # What `python -m venv` seeded is the new environment's managed set; the rest is owned.
    assert set(env_state(state, prefix, "owned")["packages"]) == {"pip:delta", "pip:ipykernel"}
    assert "pip:pip" in env_state(state, prefix, "baseline")["packages"]
    assert _cli(capsys, state, "apply", manifest)[1].startswith("No changes")


def test_system_site_packages_venv_gets_packages_and_a_kernel_without_shadowing(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ipykernel = version("ipykernel")  # the test interpreter's, seen through the base python

    # Jupyter's data dir by XDG_DATA_HOME: reconciler must write where jupyter_client reads.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    venv = make_kernel_venv(tmp_path)
    where = "import ipykernel, sys; print(ipykernel.__file__.startswith(sys.base_prefix))"
    assert run_python(venv, where, isolated) == "True"  # importable, from the base
    own_site = venv / SITE
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {
            "k": {
                "prefix": venv,
                "pip": ["delta"],
                "kernel": {"name": "sys-site", "display_name": "Python (system site)"},
            }
        },
        wheelhouse=wheelhouse,
    )
    state = tmp_path / "state"

    code, out, err = _cli(capsys, state, "plan", manifest, "--json")
    assert code == 0, out + err
    env = json.loads(out)["environments"][0]
    assert [(c["action"], c["name"]) for c in env["changes"]] == [
        ("install", "delta"),
        ("register-kernel", "sys-site"),
    ]
    assert "ipykernel" in env["satisfied"]  # the base interpreter's ipykernel counts
    assert env["pip_requirements"] == ["delta"]
    assert f"ipykernel=={ipykernel}" in env["pip_constraints"]

    code, out, err = _cli(capsys, state, "apply", manifest)

    assert code == 0, out + err
    assert sorted(os.listdir(own_site)) == ["delta", "delta-1.1.dist-info"]  # nothing shadowed
    baseline = env_state(state, venv, "baseline")["packages"]
    assert baseline["pip:ipykernel"]["version"] == ipykernel
    assert set(env_state(state, venv, "owned")["packages"]) == {"pip:delta"}
    spec = KernelSpecManager().get_kernel_spec("sys-site")
    assert spec.argv[0] == str(venv / "bin" / "python")
    assert Path(spec.resource_dir) == tmp_path / "xdg" / "jupyter" / "kernels" / "sys-site"
    assert _cli(capsys, state, "apply", manifest)[1].startswith("No changes")

    # A new package that requires a base package: uv cannot see the base copy and
    # would install a second, shadowing one (refused); pip (auto's choice) sees it.
    extra = tmp_path / "extra"
    build_wheel(extra, "needs-traitlets", "1.0", ["traitlets"])
    build_wheel(extra, "traitlets", version("traitlets"))
    for installer, expected in (
        ("uv", {("install", "needs-traitlets", False), ("reinstall", "traitlets", True)}),
        ("auto", {("install", "needs-traitlets", False)}),
    ):
        manifest = _write(
            tmp_path / f"{installer}.yaml",
            {
                "version": 1,
                "defaults": {
                    "pip": {"no_index": True, "find_links": [str(extra)]},
                    "installer": installer,
                },
                "environments": {"k": {"prefix": str(venv), "pip": ["needs-traitlets"]}},
            },
        )
        code, out, err = _cli(capsys, state, "plan", manifest, "--json")
        changes = json.loads(out)["environments"][0]["changes"]
        assert {(c["action"], c["name"], c["refused"]) for c in changes} == expected, err
        if installer == "uv":
            assert code == 3
            shadow = next(c for c in changes if c["name"] == "traitlets")
            assert "would shadow it" in shadow["reason"]
        else:
            assert code == 0
            assert _cli(capsys, state, "apply", manifest)[0] == 0
            assert not list(own_site.glob("traitlets*"))


def test_foreign_kernelspec_is_never_overwritten(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    venv = make_kernel_venv(tmp_path)
    kernel_dir = Path(isolated["HOME"], ".local/share/jupyter/kernels/mine")
    kernel_dir.mkdir(parents=True)
    spec = {"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]}
    (kernel_dir / "kernel.json").write_text(json.dumps({**spec, "display_name": "Mine"}))
    before = tree_hash(kernel_dir, venv)
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {"k": {"prefix": venv, "pip": ["delta"], "kernel": {"name": "mine", "display_name": "K"}}},
        wheelhouse=wheelhouse,
    )
    state = tmp_path / "state"

    code, out, err = _cli(capsys, state, "plan", manifest)
    assert code == 3, out + err
    assert "was not written by reconciler" in out

    code, out, err = _cli(capsys, state, "apply", manifest)

    assert code == 3, out + err
    assert tree_hash(kernel_dir, venv) == before
    assert KernelSpecManager().get_kernel_spec("mine").display_name == "Mine"


def test_new_conda_env_with_conda_packages(
    tmp_path: Path,
    channel: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = tmp_path / "conda-envs" / "fresh"
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {
            "fresh": {
                "prefix": prefix,
                "create": {"python": PY},
                "conda": ["condaonly ==1.0", "needs-libfoo2"],
            }
        },
        channel=channel,
    )
    state = tmp_path / "state"

    code, out, err = _cli(capsys, state, "apply", manifest)

    assert code == 0, out + err
    records = sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))
    assert records == [
        "condaonly-1.0-0.json",
        "libfoo-2.0-0.json",
        "needs-libfoo2-1.0-0.json",
        f"python-{PYTHON_VERSION}-0.json",
    ]
    assert (prefix / "share" / "condaonly" / "VERSION").read_text() == "1.0\n"
    assert (prefix / "share" / "libfoo" / "VERSION").read_text() == "2.0\n"
    # The new environment's baseline is what creating it seeded: python.
    assert set(env_state(state, prefix, "baseline")["packages"]) == {"conda:python"}
    assert set(env_state(state, prefix, "owned")["packages"]) == {
        "conda:condaonly",
        "conda:libfoo",
        "conda:needs-libfoo2",
    }
    assert env_state(state, prefix, "journal")["status"] == "done"
    code, out, _ = _cli(capsys, state, "apply", manifest)
    assert code == 0 and out.startswith("No changes")


def test_an_altered_saved_plan_cannot_move_a_managed_package(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A plan file is only a file: flipping ``refused`` and emptying the pins must not work."""
    venv = make_venv(tmp_path / "venv")
    pip_install(venv, ["alpha==1.0"], wheelhouse)
    manifest = write_manifest(
        tmp_path / "m.yaml", {"venv": {"prefix": venv, "pip": ["gamma"]}}, wheelhouse=wheelhouse
    )
    state = tmp_path / "state"
    plan_file = tmp_path / "plan.json"
    assert _cli(capsys, state, "baseline", "capture", manifest)[0] == 0
    assert _cli(capsys, state, "plan", manifest, "--out", plan_file)[0] == 3
    doc = json.loads(plan_file.read_text())
    for change in doc["environments"][0]["changes"]:
        change["refused"] = False
    doc["environments"][0]["pip_constraints"] = []
    plan_file.write_text(json.dumps(doc))
    before = tree_hash(venv)

    code, out, err = _cli(capsys, state, "apply", "--plan", plan_file)

    assert code == 1, out + err
    assert "it would upgrade managed alpha 1.0" in err
    assert tree_hash(venv) == before


# -- the environment lock --------------------------------------------------------------------

_HOLDER = """
import sys
from pathlib import Path
from reconciler.apply.envlock import EnvironmentLock
lock = EnvironmentLock(Path(sys.argv[1]), "e")
lock.acquire(10)
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""


def _holder(directory: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_lock_file_left_alone_is_removed_and_a_waiter_locks_the_new_one(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    """A lock file created by an apply that wrote nothing else goes on release; a process
    that was waiting on the removed file takes the lock on a fresh one, so the removal
    never lets two holders in."""
    import threading

    from reconciler.apply.envlock import EnvironmentLock
    from reconciler.errors import LockError

    directory = tmp_path / "state" / "envs" / "e-1"
    first = _holder(directory, isolated)
    waiter = EnvironmentLock(directory, "e")
    waited = threading.Thread(target=waiter.acquire, args=(10,))
    waited.start()
    time.sleep(0.3)  # the waiter now has the first file open and polls it
    assert first.stdin is not None and first.stdout is not None
    first.stdin.write("\n")
    first.stdin.flush()
    assert first.stdout.readline() == "released\n"
    first.wait(timeout=10)
    waited.join(timeout=10)
    assert not waited.is_alive()
    path = directory / "lock"
    assert waiter._fd is not None
    assert os.stat(path).st_ino == os.fstat(waiter._fd).st_ino  # the file the path names
    with pytest.raises(LockError, match="environment e is locked by "):
        EnvironmentLock(directory, "e").acquire(0.3)  # held: flock excludes this one too
    waiter.release()
    # Released by the one that created it, with nothing beside it: no trace is left.
    assert not (tmp_path / "state").exists()

    kept = tmp_path / "kept" / "envs" / "e-2"
    kept.mkdir(parents=True)
    (kept / "baseline.json").write_text("{}")
    lock = EnvironmentLock(kept, "e")
    lock.acquire(1)
    lock.release()
    assert sorted(p.name for p in kept.iterdir()) == ["baseline.json", "lock"]


def test_the_journal_begins_at_the_first_step_and_writes_only_what_changes(
    tmp_path: Path,
) -> None:
    """begin() records the first step that may start (one fsynced write fewer than
    begin, then update to it); an update that changes nothing leaves the file as is."""
    from reconciler.apply.journal import Journal

    journal = Journal(tmp_path)
    entry = journal.begin((), step="pip")
    written = journal.path.stat().st_ino
    read = journal.read()
    assert read is not None and (read.status, read.step) == ("running", "pip")
    assert journal.update(entry, step="pip") is entry
    assert journal.path.stat().st_ino == written  # not replaced
    entry = journal.update(entry, step="verify")
    assert journal.path.stat().st_ino != written
    read = journal.read()
    assert read is not None and read.step == "verify"
    entry = journal.update(entry, status="done")
    read = journal.read()
    assert read is not None and (read.status, read.step) == ("done", "verify")
