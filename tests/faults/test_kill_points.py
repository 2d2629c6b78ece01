"""kill -9 at every named fault point of apply, and SIGTERM, on real environments.

Each case runs ``reconciler apply`` as a real process with
``RECONCILER_FAULT_POINT`` set, so it SIGKILLs itself exactly there, then runs
apply again and checks: it converges to the manifest, the managed set is
byte-identical (conda-meta records and dist-info RECORD files), no ``~``-prefixed
leftovers in site-packages, the environment's requirements are consistent
(``uv pip check``) and the journal ends ``done``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.faults import POINTS
from reconciler.state.store import StateStore
from tests.support.envs import make_conda_prefix, pip_install, tree_hash, uv_bin
from tests.support.servers import StaticServer, build_simple_index, serve

REPO = Path(__file__).resolve().parents[2]


def _env(isolated: dict[str, str]) -> dict[str, str]:
    env = dict(isolated)
    env["PYTHONPATH"] = str(REPO)
    env.pop("RECONCILER_FAULT_POINT", None)
    return env


def _apply(
    env: dict[str, str], state: Path, manifest: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "--state-dir", str(state), "apply", str(manifest)],
        env={**env, **extra}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _managed(prefix: Path) -> list[Path]:
    """The image's own records and dist-info RECORD files (what must never change)."""
    site = next((prefix / "lib").glob("python*/site-packages"))
    return [*sorted((prefix / "conda-meta").glob("*.json")),
            *sorted(site.glob("*.dist-info/RECORD"))]  # fmt: skip


def _journal(state: Path, prefix: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (StateStore(state).env_dir(prefix) / "journal.json").read_text()
    )
    return data


def _check_converged(env: dict[str, str], image: Path, fresh: Path) -> None:
    site = next((image / "lib").glob("python*/site-packages"))
    assert not [p.name for p in site.iterdir() if p.name.startswith("~")]
    assert (image / "conda-meta" / "condaonly-1.1-0.json").is_file()
    assert list(site.glob("delta-1.1.dist-info"))
    assert list(next((fresh / "lib").glob("python*/site-packages")).glob("alpha-2.0.dist-info"))
    for prefix in (image, fresh):
        check = subprocess.run(
            [uv_bin(), "pip", "check", "--python", str(prefix / "bin" / "python")],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture
def setup(
    tmp_path: Path, wheelhouse: Path, channel: Path, isolated: dict[str, str]
) -> Iterator[tuple[Path, Path, Path, Path]]:
    image = make_conda_prefix(tmp_path / "image", channel, ["pyfoo ==1.0"], hybrid=True)
    pip_install(image, ["alpha==1.0"], wheelhouse)
    fresh = tmp_path / "fresh"
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"version: 1\n"
        f"defaults:\n  channels: [{channel.as_uri()}]\n"
        f"  pip: {{no_index: true, find_links: [{wheelhouse}]}}\n"
        f"environments:\n"
        f"  image:\n    prefix: {image}\n    conda: [condaonly]\n    pip: [delta]\n"
        f"  fresh:\n    prefix: {fresh}\n    create: {{venv: {sys.executable}}}\n"
        f"    pip: ['alpha>=2']\n"
    )
    yield image, fresh, manifest, tmp_path / "state"


SURVIVED: list[str] = []


@pytest.mark.parametrize("where", POINTS)
def test_kill_9_at_every_fault_point_then_rerun_converges(
    where: str, setup: tuple[Path, Path, Path, Path], isolated: dict[str, str]
) -> None:
    image, fresh, manifest, state = setup
    env = _env(isolated)
    managed = _managed(image)
    before = tree_hash(*managed)

    killed = _apply(env, state, manifest, RECONCILER_FAULT_POINT=where)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert tree_hash(*managed) == before

    rerun = _apply(env, state, manifest)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    if where != "after-lock":  # killed before any journal was written: nothing to recover
        assert "did not finish" in rerun.stdout
    assert tree_hash(*managed) == before
    _check_converged(env, image, fresh)
    for prefix in (image, fresh):
        assert _journal(state, prefix)["status"] == "done"
    owned = json.loads((StateStore(state).env_dir(image) / "owned.json").read_text())
    assert set(owned["packages"]) == {"conda:condaonly", "pip:delta"}
    again = _apply(env, state, manifest)
    assert again.returncode == 0 and "No changes" in again.stdout
    SURVIVED.append(where)


def test_every_fault_point_was_survived() -> None:
    """The figure for the report: fault points survived / fault points."""
    assert sorted(SURVIVED) == sorted(POINTS), SURVIVED


@pytest.fixture
def slow_index(wheelhouse: Path, tmp_path: Path) -> Iterator[StaticServer]:
    with serve(build_simple_index(wheelhouse, tmp_path / "index")) as server:
        yield server


def test_sigterm_stops_at_a_safe_point_and_the_next_run_finishes(
    tmp_path: Path, channel: Path, slow_index: StaticServer, isolated: dict[str, str]
) -> None:
    image = make_conda_prefix(tmp_path / "image", channel, ["pyfoo ==1.0"], hybrid=True)
    managed = _managed(image)
    before = tree_hash(*managed)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"version: 1\ndefaults:\n  channels: [{channel.as_uri()}]\n"
        f"  pip: {{index_url: '{slow_index.url}simple/'}}\n"
        f"environments:\n  image:\n    prefix: {image}\n    conda: [condaonly]\n"
        f"    pip: [delta]\n"
    )
    state = tmp_path / "state"
    env = _env(isolated)
    slow_index.delay = 60.0  # the wheel download hangs until the apply is stopped
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--state-dir", str(state), "apply", str(manifest)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    # The installer's download (the plan reads wheels' file lists with Range requests).
    while not any(r.path.endswith(".whl") and r.range is None for r in slow_index.requests()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    stopped_in = time.monotonic() - sent
    assert stopped_in < 10, f"took {stopped_in:.1f} s to stop"
    assert proc.returncode == 1, out + err
    assert "stopped by SIGTERM" in out + err
    journal = _journal(state, image)
    assert journal["status"] == "interrupted"
    assert tree_hash(*managed) == before
    # The conda step had finished: it is recorded as reconciler's, not left foreign.
    owned = json.loads((StateStore(state).env_dir(image) / "owned.json").read_text())
    assert "conda:condaonly" in owned["packages"]

    slow_index.delay = 0.0
    rerun = _apply(env, state, manifest)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _journal(state, image)["status"] == "done"
    site = next((image / "lib").glob("python*/site-packages"))
    assert list(site.glob("delta-*.dist-info"))
    assert tree_hash(*managed) == before


def test_sigterm_while_the_plan_reads_wheel_metadata_stops_at_once(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """The chains of a transitive install are read from the index's PEP 658 metadata
    files while the environment is locked: a stalled read ends at the stop request (it
    used to wait for its own 10 s timeout, per file, before the plan went on)."""
    from tests.support.envs import make_venv

    prefix = make_venv(tmp_path / "env")
    state = tmp_path / "state"
    with serve(build_simple_index(wheelhouse, tmp_path / "index")) as server:
        server.script("/files/*.metadata", then="stall", agent="reconciler/")
        manifest = tmp_path / "manifest.yaml"
        manifest.write_text(
            f"version: 1\ndefaults:\n  pip: {{index_url: '{server.url}simple/'}}\n"
            f"environments:\n  main:\n    prefix: {prefix}\n    pip: [gamma]\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "--state-dir", str(state), "apply", str(manifest)],
            env=_env(isolated), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not any(
            r.path.endswith(".metadata") and r.answer == "stall" for r in server.requests()
        ):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - sent
    assert stopped_in < 5, f"took {stopped_in:.1f} s to stop"
    assert proc.returncode == 1, out + err
    assert "error: stopped by SIGTERM while reading http://127.0.0.1:" in err
    assert ".metadata; nothing was changed" in err
    site = next((prefix / "lib").glob("python*/site-packages"))
    assert not list(site.glob("*.dist-info"))  # nothing was installed
