"""Speculative uv previews (reconciler/backends/speculative.py, entry.py).

A repeated pending ``plan``/``apply`` starts the uv dry runs its last run recorded
at process start; the planner takes such a result only for the very same
invocation in an unchanged environment. Each run here is a fresh interpreter
(``python -c PROBE``) whose ``subprocess.Popen`` notes every uv dry run it starts
and whether the planner was imported by then (a speculative one starts before),
and which reports, after ``main`` returned, any child left (a zombie included) and
any speculative process still running. Real uv, a real venv, a real index on
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends.speculative import RECORD
from tests.support.envs import make_venv, pip_install, uv_bin
from tests.support.servers import StaticServer, build_simple_index, serve

REPO = Path(__file__).resolve().parents[1]
PROBE = r"""
import json, os, subprocess, sys, time
starts, procs = [], []
_init = subprocess.Popen.__init__
def init(self, args, *a, **k):
    _init(self, args, *a, **k)
    if "--dry-run" in [str(x) for x in args]:
        starts.append({"planner": "reconciler.plan.planner" in sys.modules, "pid": self.pid,
                       "group": os.getpgid(self.pid) == os.getpgrp()})
        procs.append(self)
subprocess.Popen.__init__ = init
from reconciler.entry import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # SIGTERM (entry._terminated): what it left is reported too
    code = exc.code
def live(pid):
    # Whether the process runs still (a zombie is not running: reaped or not).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
groups = []
for s in starts:
    for _ in range(100):  # SIGKILL is delivered at once, acted on a moment later
        if not live(s["pid"]):
            break
        time.sleep(0.01)
    else:
        groups.append(s["pid"])
try:
    os.waitpid(-1, os.WNOHANG)
    children = True
except ChildProcessError:
    children = False
for s, p in zip(starts, procs):
    s["returncode"] = p.returncode
print(json.dumps({"code": code, "starts": starts, "groups": groups, "children": children}))
"""
#: The full path alone (cli.main: no speculation, no record), to compare outputs with.
FULL = PROBE.replace("from reconciler.entry import main", "from reconciler.cli import main")


class Setup:
    """A venv with ``alpha 1.0`` installed by hand (foreign: pinned, so the preview has
    a constraints file) and a manifest asking for ``delta`` from a local index."""

    def __init__(self, tmp: Path, server: StaticServer, env: dict[str, str]) -> None:
        self.prefix = make_venv(tmp / "env")
        self.tmp = tmp / "tmp"  # TMPDIR of every run: where constraints files go
        self.tmp.mkdir()
        self.manifest = tmp / "manifest.yaml"
        self.manifest.write_text(
            f"version: 1\ndefaults:\n  pip: {{index_url: '{server.url}simple/'}}\n"
            f"environments:\n  e:\n    prefix: {self.prefix}\n    pip: [delta]\n"
        )
        self.state = tmp / "state"
        self.server = server
        self.env = {**env, "PYTHONPATH": str(REPO), "TMPDIR": str(self.tmp)}

    def run(self, *args: str | Path, probe: str = PROBE, **extra: str) -> tuple[dict, str, str]:  # type: ignore[type-arg]
        """Run reconciler: (the probe's report, stdout, stderr)."""
        proc = subprocess.run(
            [sys.executable, "-c", probe, "--state-dir", str(self.state), *map(str, args)],
            env={**self.env, **extra}, capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        out, sep, last = proc.stdout.rstrip("\n").rpartition("\n")
        assert last.startswith("{"), proc.stdout + proc.stderr
        report: dict = json.loads(last)  # type: ignore[type-arg]
        return report, out + sep, proc.stderr

    def left_behind(self, report: dict) -> list[str]:  # type: ignore[type-arg]
        """What a run left: a child, a live speculative group, a temp file, uv's .lock."""
        left = [f"group {g}" for g in report["groups"]]
        left += ["a child"] if report["children"] else []
        left += [p.name for p in self.tmp.iterdir()]
        left += [".lock"] if (self.prefix / ".lock").exists() else []
        return left


@pytest.fixture
def setup(tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]) -> Iterator[Setup]:
    with serve(build_simple_index(wheelhouse, tmp_path / "index")) as server:
        s = Setup(tmp_path, server, isolated)
        pip_install(s.prefix, ["alpha==1.0"], wheelhouse)
        (s.prefix / ".lock").unlink()  # what uv's install left; a preview leaves none
        yield s


def speculative(report: dict) -> int:  # type: ignore[type-arg]
    return sum(1 for s in report["starts"] if not s["planner"])


def planned(report: dict) -> int:  # type: ignore[type-arg]
    return sum(1 for s in report["starts"] if s["planner"])


def test_a_repeated_pending_plan_takes_the_speculative_preview(setup: Setup) -> None:
    first, out1, err1 = setup.run("plan", setup.manifest)
    assert (first["code"], speculative(first), planned(first)) == (0, 0, 1), out1 + err1
    assert "install pip delta 1.1" in out1, out1
    assert (setup.state / RECORD).is_file()
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    for _ in range(2):
        again, out, err = setup.run("plan", setup.manifest)
        # uv's dry run ran once: the speculative one, taken by the planner.
        assert (speculative(again), planned(again)) == (1, 0), again
        assert (again["code"], out, err) == (full["code"], full_out, full_err)
        assert setup.left_behind(again) == []
    for flags in (["--json"], ["-q", "--detailed-exitcode"]):
        setup.run("plan", setup.manifest, *flags)  # records this rendering's key
        again, out, err = setup.run("plan", setup.manifest, *flags)
        full, full_out, full_err = setup.run("plan", setup.manifest, *flags, probe=FULL)
        assert (speculative(again), planned(again)) == (1, 0), again
        assert (again["code"], out, err) == (full["code"], full_out, full_err)
    assert setup.left_behind(again) == []


def test_an_apply_after_a_plan_of_the_same_manifest_takes_its_preview(setup: Setup) -> None:
    """The record's key is the manifest and the selection, not the command or the output
    options: ``plan --json`` records what the ``apply`` that follows starts."""
    first, out, err = setup.run("plan", setup.manifest, "--json")
    assert (first["code"], speculative(first), planned(first)) == (0, 0, 1), out + err
    applied, out, err = setup.run("apply", setup.manifest)
    assert (applied["code"], speculative(applied), planned(applied)) == (0, 1, 0), out + err
    site = next((setup.prefix / "lib").glob("python*/site-packages"))
    assert (site / "delta-1.1.dist-info").is_dir()
    assert setup.left_behind(applied) == [".lock"]  # uv's install leaves it, as without


def _edit(setup: Setup, pip: str) -> None:
    """The manifest with other pip requests for the environment (new bytes: no entry)."""
    text = setup.manifest.read_text()
    setup.manifest.write_text(re.sub(r"pip: \[.*\]\n", f"pip: [{pip}]\n", text))


def test_a_manifest_just_edited_takes_the_dry_run_recorded_with_its_own_requirements(
    setup: Setup,
) -> None:
    """The previous manifest's dry run, with the edited manifest's requirements in place
    of its own, starts before the planner is imported; the planner takes it (uv runs
    once) and the plan is the full path's. The next plan of the edited manifest starts
    its own entry."""
    setup.run("plan", setup.manifest)
    _edit(setup, "'delta>=1.0'")
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    assert "install pip delta 1.1" in full_out, full_out + full_err
    for _ in range(2):
        edited, out, err = setup.run("plan", setup.manifest)
        assert (speculative(edited), planned(edited)) == (1, 0), out + err
        assert [s["returncode"] for s in edited["starts"]] == [0], edited
        assert (edited["code"], out, err) == (full["code"], full_out, full_err)
        assert setup.left_behind(edited) == []


def test_an_edited_dry_run_leaves_out_what_the_recorded_one_left_out(setup: Setup) -> None:
    """``alpha`` (foreign, pinned, nothing it needs) is met and held whole by the pins:
    the planner's dry run leaves it out of what uv resolves, and so does the dry run
    started for the manifest once edited, which the planner then takes."""
    _edit(setup, "alpha, delta")
    setup.run("plan", setup.manifest)
    _edit(setup, "alpha, 'delta>=1.0'")
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    assert "install pip delta 1.1" in full_out, full_out + full_err
    edited, out, err = setup.run("plan", setup.manifest)
    assert (speculative(edited), planned(edited)) == (1, 0), out + err
    assert [s["returncode"] for s in edited["starts"]] == [0], edited
    assert (edited["code"], out, err) == (full["code"], full_out, full_err)
    assert setup.left_behind(edited) == []
    _, shown, _ = setup.run("plan", setup.manifest, "--json", probe=FULL)
    env = json.loads(shown)["environments"][0]
    assert (env["satisfied"], env["pip_requirements"]) == (["alpha"], ["delta>=1.0"])


def test_an_apply_of_a_manifest_just_edited_takes_the_edited_dry_run(setup: Setup) -> None:
    setup.run("plan", setup.manifest)
    _edit(setup, "'delta>=1.0'")
    applied, out, err = setup.run("apply", setup.manifest)
    assert (applied["code"], speculative(applied), planned(applied)) == (0, 1, 0), out + err
    site = next((setup.prefix / "lib").glob("python*/site-packages"))
    assert (site / "delta-1.1.dist-info").is_dir()


def test_an_edited_dry_run_the_planner_would_not_run_is_killed(setup: Setup) -> None:
    """A request the planner refuses (it would move the foreign ``alpha 1.0``) is no
    request of its dry run: the edited one, which asks for it, is killed and the
    planner runs its own."""
    setup.run("plan", setup.manifest)
    _edit(setup, "delta, 'alpha==2.0'")
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    assert full["code"] == 3 and "install pip delta 1.1" in full_out, full_out + full_err
    _slow_index(setup)  # the edited uv still runs when the planner decides
    cache = str(setup.tmp.parent / "uv-cache-2")
    edited, out, err = setup.run("plan", setup.manifest, UV_CACHE_DIR=cache)
    assert (speculative(edited), planned(edited)) == (1, 1), out + err
    assert [s["returncode"] for s in edited["starts"]] == [-signal.SIGKILL, 0], edited
    assert (edited["code"], out, err) == (full["code"], full_out, full_err)
    assert setup.left_behind(edited) == []


def test_an_edit_after_a_refused_plan_starts_the_refused_plans_dry_run_edited(
    setup: Setup,
) -> None:
    """A refused plan's record ends with the unpinned dry run that explains the
    refusal, which the planner never runs for a plan: the edit after it starts the
    refused plan's own (pinned) dry run with the edited requirements, and the planner
    takes it."""
    setup.run("plan", setup.manifest)
    _edit(setup, "delta, 'beta==2.0'")  # beta 2.0 needs alpha>=2: alpha 1.0 is foreign
    refused, out, err = setup.run("plan", setup.manifest)
    assert refused["code"] == 3 and "refused" in out, out + err
    # The pinned dry run (the edited one, taken: no solution), then the unpinned one.
    assert [s["returncode"] for s in refused["starts"]] == [1, 0], refused
    _edit(setup, "'delta>=1.0'")
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    edited, out, err = setup.run("plan", setup.manifest)
    assert (speculative(edited), planned(edited)) == (1, 0), out + err
    assert [s["returncode"] for s in edited["starts"]] == [0], edited
    assert (edited["code"], out, err) == (full["code"], full_out, full_err)
    assert setup.left_behind(edited) == []


def test_an_edit_that_changes_the_repositories_starts_nothing(
    setup: Setup, wheelhouse: Path
) -> None:
    """The recorded dry run asked the index the manifest named before; the edited one
    names a local directory instead: the edited manifest's names are never asked of
    the index it no longer names (the planner runs its own dry run)."""
    setup.run("plan", setup.manifest)
    text = setup.manifest.read_text()
    text = re.sub(
        r"pip: \{index_url: [^}]*\}", f"pip: {{no_index: true, find_links: ['{wheelhouse}']}}", text
    )
    setup.manifest.write_text(text.replace("pip: [delta]", "pip: ['delta>=1.0']"))
    edited, out, err = setup.run("plan", setup.manifest)
    assert (speculative(edited), planned(edited)) == (0, 1), out + err
    assert "install pip delta 1.1" in out, out + err
    assert setup.left_behind(edited) == []


def test_an_edited_manifest_of_a_changed_environment_starts_nothing(
    setup: Setup, wheelhouse: Path
) -> None:
    setup.run("plan", setup.manifest)
    pip_install(setup.prefix, ["gamma"], wheelhouse, extra_args=["--no-deps"])
    (setup.prefix / ".lock").unlink(missing_ok=True)
    _edit(setup, "'delta>=1.0'")
    edited, out, err = setup.run("plan", setup.manifest)
    assert (speculative(edited), planned(edited)) == (0, 1), out + err
    assert "install pip delta 1.1" in out, out + err


def _restore(setup: Setup, site: Path, mtime: int) -> None:
    """Uninstall what the apply installed, leaving site-packages as it was (mtime too:
    the stamp is the directory's inode and mtime)."""
    subprocess.run(
        [uv_bin(), "pip", "uninstall", "--python", str(setup.prefix / "bin" / "python"), "delta"],
        env=setup.env, check=True, capture_output=True,
    )  # fmt: skip
    (setup.prefix / ".lock").unlink(missing_ok=True)
    os.utime(site, ns=(mtime, mtime))


def test_a_repeated_pending_apply_takes_the_speculative_preview(setup: Setup) -> None:
    """An apply whose install failed (the index refused the download) is retried: its
    preview was recorded, and the environment is as it was."""
    site = next((setup.prefix / "lib").glob("python*/site-packages"))
    mtime = site.stat().st_mtime_ns
    setup.server.script("/files/delta-1.1-py3-none-any.whl", 500, 500, 500, agent="uv/")
    first, out, err = setup.run("apply", setup.manifest)
    assert (first["code"], speculative(first), planned(first)) == (1, 0, 1), out + err
    assert site.stat().st_mtime_ns == mtime
    (setup.prefix / ".lock").unlink()  # what uv's install left
    saved = setup.state.parent / "saved-state"
    shutil.copytree(setup.state, saved)
    recorded = (setup.state / RECORD).stat()
    recorded_text = (setup.state / RECORD).read_bytes()
    again, out, err = setup.run("apply", setup.manifest)
    assert (speculative(again), planned(again)) == (1, 0), out + err
    left = setup.left_behind(again)  # uv's install leaves its .lock: the full path's too
    assert (site / "delta-1.1.dist-info").is_dir()
    # The record keeps the preview, with what the environment held before the install
    # (the same entry: the file is not rewritten).
    after = (setup.state / RECORD).stat()
    assert (after.st_ino, after.st_mtime_ns) == (recorded.st_ino, recorded.st_mtime_ns)
    assert (setup.state / RECORD).read_bytes() == recorded_text
    applied = setup.state.parent / "applied-state"
    shutil.copytree(setup.state, applied)
    _restore(setup, site, mtime)
    shutil.rmtree(setup.state)
    shutil.copytree(saved, setup.state)
    full, full_out, full_err = setup.run("apply", setup.manifest, probe=FULL)
    assert (again["code"], _untimed(out), err) == (full["code"], _untimed(full_out), full_err)
    assert left == setup.left_behind(full) == [".lock"]
    # An app start: the image reset to what it held before that apply, on a new mount
    # (new inodes; the directory mtime of the reset), the home and state dir kept.
    _restore(setup, site, mtime)
    (setup.prefix / ".lock").unlink(missing_ok=True)
    moved = site.with_name("site-packages.mounted")
    shutil.copytree(site, moved, symlinks=True)
    shutil.rmtree(site)
    moved.rename(site)
    shutil.rmtree(setup.state)
    shutil.copytree(applied, setup.state)
    start, out, err = setup.run("apply", setup.manifest)
    assert (start["code"], speculative(start), planned(start)) == (0, 1, 0), out + err
    assert (site / "delta-1.1.dist-info").is_dir()


def _untimed(out: str) -> str:
    """An apply's output without its clock times and its log file's (timed) name."""
    out = re.sub(r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", "", out)
    return re.sub(r"apply-[0-9-]+\.log", "apply-TIME.log", out)


def test_a_changed_environment_launches_nothing(setup: Setup, wheelhouse: Path) -> None:
    setup.run("plan", setup.manifest)
    pip_install(setup.prefix, ["epsilon-pkg"], wheelhouse)
    (setup.prefix / ".lock").unlink(missing_ok=True)
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    setup.run("plan", setup.manifest)  # records again, for the environment as it is now
    pip_install(setup.prefix, ["gamma"], wheelhouse, extra_args=["--no-deps"])
    (setup.prefix / ".lock").unlink(missing_ok=True)
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    again, out, err = setup.run("plan", setup.manifest)
    assert (speculative(again), planned(again)) == (0, 1), again
    assert (again["code"], out, err) == (full["code"], full_out, full_err)
    assert setup.left_behind(again) == []


def _slow_index(setup: Setup) -> None:
    """delta's index page answered after a second: a speculative uv is still waiting
    for it when the planner decides (an empty uv cache makes uv ask for it)."""
    setup.server.delay = 1.0
    setup.server.delay_suffixes = ("/simple/delta/",)


def test_a_changed_invocation_kills_the_speculation(setup: Setup) -> None:
    setup.run("plan", setup.manifest)
    # The same manifest, state and environment; the user's uv timeout is not the one the
    # record holds, so the child's variables differ: the planner runs its own dry run.
    extra = {"UV_HTTP_TIMEOUT": "17"}
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL, **extra)
    # The speculative uv is still running when the planner finds the invocation differs.
    _slow_index(setup)
    cache = str(setup.tmp.parent / "uv-cache-2")
    again, out, err = setup.run("plan", setup.manifest, **extra, UV_CACHE_DIR=cache)
    assert (speculative(again), planned(again)) == (1, 1), again
    assert [s["returncode"] for s in again["starts"]] == [-signal.SIGKILL, 0], again
    assert (again["code"], out, err) == (full["code"], full_out, full_err)
    assert setup.left_behind(again) == []
    # Its record now holds that invocation: taken the next time.
    again, out, err = setup.run("plan", setup.manifest, **extra)
    assert (speculative(again), planned(again)) == (1, 0), again


def test_an_error_before_planning_kills_and_reaps_the_speculation(setup: Setup) -> None:
    setup.run("baseline", "capture", setup.manifest)
    setup.run("plan", setup.manifest)
    baselines = list(setup.state.glob("envs/*/baseline.json"))
    assert len(baselines) == 1, list(setup.state.rglob("*"))
    baselines[0].write_text("{not json")
    _slow_index(setup)
    cache = str(setup.tmp.parent / "uv-cache-2")  # empty: uv asks the index
    again, out, err = setup.run("plan", setup.manifest, UV_CACHE_DIR=cache)
    assert again["code"] == 1 and out == "", out + err
    assert err.startswith("error: ") and str(baselines[0]) in err, err
    assert (speculative(again), planned(again)) == (1, 0), again
    assert again["starts"][0]["returncode"] == -signal.SIGKILL, again
    assert setup.left_behind(again) == []


def test_a_fault_injection_launches_nothing(setup: Setup) -> None:
    setup.run("plan", setup.manifest)
    again, out, err = setup.run("plan", setup.manifest, RECONCILER_FAULT_POINT="before-record")
    assert (again["code"], speculative(again), planned(again)) == (0, 0, 1), out + err


def test_credentials_in_an_index_url_are_never_recorded(setup: Setup) -> None:
    text = setup.manifest.read_text()
    setup.manifest.write_text(text.replace(setup.server.url, setup.server.url_with("u:s3cr3t")))
    first, out, err = setup.run("plan", setup.manifest)
    assert first["code"] == 0 and "install pip delta 1.1" in out, out + err
    assert all(b"s3cr3t" not in p.read_bytes() for p in setup.state.rglob("*") if p.is_file())
    again, out, err = setup.run("plan", setup.manifest)
    assert (speculative(again), planned(again)) == (0, 1), again


@pytest.mark.parametrize(
    ("recorded", "instead"),
    [
        (b"\0alpha==1.0\n\0", b"\0alpha==2.0\n\0"),  # the constraints file's content
        (b"\0--\0delta\0", b"\0--\0delta<1.1\0"),  # a requirement
    ],
)
def test_a_record_that_no_longer_matches_the_invocation_is_killed(
    setup: Setup, recorded: bytes, instead: bytes
) -> None:
    """The record is derived data: one that says something else than what the planner
    now runs (here: edited) starts a process whose result is never taken."""
    setup.run("plan", setup.manifest)
    record = setup.state / RECORD
    text = record.read_bytes()
    assert text.count(recorded) == 1, text
    record.write_bytes(text.replace(recorded, instead))
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    _slow_index(setup)
    cache = str(setup.tmp.parent / "uv-cache-2")
    again, out, err = setup.run("plan", setup.manifest, UV_CACHE_DIR=cache)
    assert (speculative(again), planned(again)) == (1, 1), again
    assert [s["returncode"] for s in again["starts"]] == [-signal.SIGKILL, 0], again
    assert (again["code"], out, err) == (full["code"], full_out, full_err)
    assert setup.left_behind(again) == []


#: The probe, with site-packages touched right after the speculative launch: the
#: environment changed while reconciler started (another installer finished then).
TOUCHED = PROBE.replace(
    "from reconciler.entry import main\n",
    "from reconciler.entry import main\n"
    "import reconciler.backends.speculative as sp\n"
    "_begin = sp.begin\n"
    "def begin(*a, **k):\n"
    "    _begin(*a, **k)\n"
    "    os.utime(os.environ['TOUCH_AFTER_LAUNCH'])\n"
    "sp.begin = begin\n",
)


def test_an_environment_changed_after_the_launch_is_not_taken(setup: Setup) -> None:
    setup.run("plan", setup.manifest)
    site = next((setup.prefix / "lib").glob("python*/site-packages"))
    _slow_index(setup)
    cache = str(setup.tmp.parent / "uv-cache-2")
    again, out, err = setup.run(
        "plan", setup.manifest, probe=TOUCHED, TOUCH_AFTER_LAUNCH=str(site), UV_CACHE_DIR=cache
    )
    full, full_out, full_err = setup.run("plan", setup.manifest, probe=FULL)
    assert (speculative(again), planned(again)) == (1, 1), again
    assert [s["returncode"] for s in again["starts"]] == [-signal.SIGKILL, 0], again
    assert (again["code"], out, err) == (full["code"], full_out, full_err)
    assert setup.left_behind(again) == []


def test_a_speculative_preview_runs_in_reconcilers_process_group(setup: Setup) -> None:
    """A Ctrl-C (or a signal to the group: ``timeout``, a notebook's interrupt) reaches
    it as it reaches the planner's own preview."""
    setup.run("plan", setup.manifest)
    again, _, _ = setup.run("plan", setup.manifest)
    assert (speculative(again), planned(again)) == (1, 0), again
    assert all(s["group"] for s in again["starts"]), again


def test_an_apply_that_waited_for_the_lock_previews_again_under_it(setup: Setup) -> None:
    """What was previewed before another apply's end may not hold after it: the
    speculative one is killed and the preview runs with the lock held."""
    import threading

    from reconciler.apply.envlock import EnvironmentLock
    from reconciler.state.store import StateStore

    setup.run("plan", setup.manifest)
    lock = EnvironmentLock(StateStore(setup.state).env_dir(setup.prefix), "e")
    lock.acquire(5)  # another apply of the environment is running
    threading.Timer(1.5, lock.release).start()
    applied, out, err = setup.run("apply", setup.manifest)
    assert (applied["code"], speculative(applied), planned(applied)) == (0, 1, 1), out + err
    assert applied["starts"][0]["returncode"] in (0, -signal.SIGKILL), applied
    assert setup.left_behind(applied) == [".lock"]  # uv's install leaves it, as without


#: The probe, saying each dry run's pid as it starts (a SIGTERM ends the run at once).
SAYS_PIDS = PROBE.replace(
    "        procs.append(self)\n",
    "        procs.append(self)\n        print('started', self.pid, file=sys.stderr, flush=True)\n",
)


def test_a_sigterm_before_the_planner_claims_leaves_nothing_running(setup: Setup) -> None:
    """SIGTERM to reconciler alone (not to its group) while an apply waits for the lock:
    it exits 143 at once, and its speculative uv, constraints file and uv's .lock are
    gone."""
    import time

    from reconciler.apply.envlock import EnvironmentLock
    from reconciler.state.store import StateStore

    setup.run("plan", setup.manifest)
    lock = EnvironmentLock(StateStore(setup.state).env_dir(setup.prefix), "e")
    lock.acquire(5)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", SAYS_PIDS, "--state-dir", str(setup.state), "apply",
             str(setup.manifest)],
            env=setup.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("started "), line
        time.sleep(1.0)  # waiting for the lock
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        lock.release()
    assert proc.returncode == 143 and took < 5, (proc.returncode, took, out + err)
    pid = int(line.split()[1])
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z"
    assert list(setup.tmp.iterdir()) == [] and not (setup.prefix / ".lock").exists()


def test_entry_main_in_another_thread_speculates_without_a_signal_handler(setup: Setup) -> None:
    """Signal handlers are the main thread's: a program that calls entry.main from
    another thread gets the plan (and its speculative preview) all the same."""
    setup.run("plan", setup.manifest)
    threaded = PROBE.replace(
        "    code = main(sys.argv[1:])\n",
        "    import threading\n"
        "    got = []\n"
        "    t = threading.Thread(target=lambda: got.append(main(sys.argv[1:])))\n"
        "    t.start(); t.join()\n"
        "    code = got[0] if got else 'raised'\n",
    )
    again, out, err = setup.run("plan", setup.manifest, probe=threaded)
    assert (again["code"], speculative(again), planned(again)) == (0, 1, 0), out + err


def test_a_record_others_may_write_is_not_read(setup: Setup) -> None:
    setup.run("plan", setup.manifest)
    record = setup.state / RECORD
    record.chmod(0o666)
    again, _, _ = setup.run("plan", setup.manifest)
    assert (speculative(again), planned(again)) == (0, 1), again
    # That run's own record replaced it (this user's, 0600): read again.
    assert record.stat().st_mode & 0o077 == 0
    again, _, _ = setup.run("plan", setup.manifest)
    assert (speculative(again), planned(again)) == (1, 0), again


def test_a_failed_apply_keeps_the_record(setup: Setup) -> None:
    """An apply that gave up waiting for the lock previewed nothing: the entry it
    started and did not take stays for the next run."""
    from reconciler.apply.envlock import EnvironmentLock
    from reconciler.state.store import StateStore

    setup.run("plan", setup.manifest)
    lock = EnvironmentLock(StateStore(setup.state).env_dir(setup.prefix), "e")
    lock.acquire(5)
    try:
        failed, out, err = setup.run("apply", setup.manifest, "--lock-timeout", "0.5")
    finally:
        lock.release()
    assert failed["code"] == 1 and "locked" in err, out + err
    assert setup.left_behind(failed) == []
    again, out, err = setup.run("plan", setup.manifest)
    assert (again["code"], speculative(again), planned(again)) == (0, 1, 0), out + err


def test_a_record_starts_nothing_but_a_uv_dry_run_of_its_environment(setup: Setup) -> None:
    """The record is read from the state dir: an entry that is not what a preview records
    (another program, another command, no environment paths) is never started."""
    from reconciler.backends import speculative as sp

    setup.run("plan", setup.manifest)
    entries = sp._load(str(setup.state))
    ((key, [(inv, stamp, uv)]),) = entries.items()
    marker = setup.tmp.parent / "started"
    edits = [
        ["/bin/sh", "-c", f"touch {marker}", *inv.argv[3:]],
        [inv.argv[0], "pip", "install", f"--target={marker}", *inv.argv[4:]],
    ]
    for argv in edits:
        bad = sp._Invocation(inv.python, argv, -1, "", inv.additions, inv.paths)
        text = sp._encode({key: [(bad, stamp, uv)]})
        assert text is not None
        (setup.state / RECORD).write_text(text)
        again, _, _ = setup.run("plan", setup.manifest)
        assert (speculative(again), planned(again)) == (0, 1), again
        assert not marker.exists()
    no_paths = sp._Invocation(inv.python, inv.argv, inv.at, inv.constraints, inv.additions, [])
    (setup.state / RECORD).write_text(sp._encode({key: [(no_paths, "", uv)]}) or "")
    again, _, _ = setup.run("plan", setup.manifest)
    assert (speculative(again), planned(again)) == (0, 1), again


def test_an_entry_started_and_never_taken_is_dropped(setup: Setup) -> None:
    """A plan answered from a lock file runs no preview: the entry the plan before it
    recorded is started once, not taken, and dropped (not started at every run)."""
    setup.run("plan", setup.manifest)
    locked, out, err = setup.run("lock", setup.manifest)
    assert locked["code"] == 0, out + err
    first, out, err = setup.run("plan", setup.manifest)
    assert (first["code"], speculative(first), planned(first)) == (0, 1, 0), out + err
    assert first["starts"][0]["returncode"] in (0, -signal.SIGKILL), first
    again, out, err = setup.run("plan", setup.manifest)
    assert (again["code"], speculative(again), planned(again)) == (0, 0, 0), out + err
    assert setup.left_behind(again) == []


def test_a_damaged_record_is_no_record(setup: Setup) -> None:
    from reconciler.backends import speculative as sp

    setup.run("plan", setup.manifest)
    text = (setup.state / RECORD).read_text()
    entries = sp._decode(text)
    ((key, [(inv, stamp, uv)]),) = entries.items()
    for at in (len(inv.argv), -2, 0):  # beyond the command line, or not the blank one
        moved = sp._Invocation(inv.python, inv.argv, at, "x\n", inv.additions, inv.paths)
        assert sp._decode(sp._encode({key: [(moved, stamp, uv)]}) or "") == {}
    assert sp._decode(text[: len(text) // 2]) == {} and sp._decode(text + "\0x") == {}


def test_uvs_lock_is_removed_only_when_no_uv_holds_it(tmp_path: Path) -> None:
    import fcntl

    from reconciler.backends.speculative import remove_idle_lock

    lock = tmp_path / ".lock"
    lock.write_bytes(b"")
    held = os.open(lock, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # a uv installing into the environment
    remove_idle_lock(str(lock))
    assert lock.exists()
    os.close(held)
    remove_idle_lock(str(lock))
    assert not lock.exists()
    remove_idle_lock(str(lock))  # none: nothing to do


#: PROBE, noting each ``uv pip compile`` (the newest-release question) it starts, with
#: every speculative preview taken only once its process has ended (as when the planner's
#: imports outlast the dry run).
ENDED = PROBE.replace(
    "subprocess.Popen.__init__ = init\n",
    "subprocess.Popen.__init__ = init\n"
    "compiles = []\n"
    "_plain = subprocess.Popen.__init__\n"
    "def noted(self, args, *a, **k):\n"
    "    _plain(self, args, *a, **k)\n"
    "    if 'compile' in [str(x) for x in args]:\n"
    "        compiles.append(self.pid)\n"
    "subprocess.Popen.__init__ = noted\n"
    "from reconciler.backends import speculative as _sp\n"
    "_take = _sp._take\n"
    "def ended(wanted):\n"
    "    one = _take(wanted)\n"
    "    if one is not None and one.proc is not None:\n"
    "        one.proc.wait()\n"
    "    return one\n"
    "_sp._take = ended\n",
).replace('"children": children}', '"children": children, "compiles": len(compiles)}')


def test_a_preview_taken_after_its_end_asks_the_newest_release_only_where_needed(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """Local directories only: the newest release of delta (1.0 and 1.1 offered) is asked
    beside a preview that runs. A speculative preview taken once it has ended leaves
    nothing to overlap: the question is asked after it only where its outcome needs it,
    and here delta is planned at its newest, 1.1, so it is not asked at all; the plan
    says the same."""
    prefix = make_venv(tmp_path / "env")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"version: 1\ndefaults:\n  pip: {{no_index: true, find_links: ['{wheelhouse}']}}\n"
        f"environments:\n  e:\n    prefix: {prefix}\n    pip: [delta]\n"
    )
    env = {**isolated, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}

    def plan() -> tuple[dict, str]:  # type: ignore[type-arg]
        proc = subprocess.run(
            [sys.executable, "-c", ENDED, "--state-dir", str(tmp_path / "state"), "plan",
             str(manifest)],
            env=env, capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        out, _, last = proc.stdout.rstrip("\n").rpartition("\n")
        assert last.startswith("{"), proc.stdout + proc.stderr
        return json.loads(last), out

    first, said = plan()
    assert (first["code"], speculative(first), planned(first)) == (0, 0, 1), said
    assert first["compiles"] == 1  # asked beside the preview that ran
    assert "+ install pip delta 1.1 (requested)" in said, said
    for _ in range(2):
        again, out = plan()
        assert (speculative(again), planned(again), again["compiles"]) == (1, 0, 0), again
        assert (again["code"], out) == (first["code"], said)
