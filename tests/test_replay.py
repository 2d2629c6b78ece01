"""The replay of a repeated pending ``plan`` (reconciler/entry.py, fastpath.py, speculative.py).

A pending plan whose output depended only on stamped files (the environments, the
state dir, the local find-links directories) and on its uv previews is printed again
without planning, once those previews, started again at process start, answer
exactly as they did. It must print what the full path prints, exit as it exits, and
plan in full once anything it depended on changed: a wheel added or written over in
place, uv answering otherwise, an index read. Real uv, a real venv, real
wheels in a local directory and a real index on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.envs import make_venv, pip_install
from tests.support.servers import build_simple_index, serve
from tests.support.wheels import build_wheel, build_wheelhouse, overwrite_in_place

REPO = Path(__file__).resolve().parents[1]
#: Runs the console entry point; reports its exit code and whether the planner loaded.
PROBE = (
    "import sys, json; from reconciler.entry import main; code = main(sys.argv[1:]); "
    "print(json.dumps({'code': code, 'planner': 'reconciler.plan.planner' in sys.modules}))"
)
#: The full path alone (no fast path, no replay), to compare outputs with.
FULL = PROBE.replace("from reconciler.entry import main", "from reconciler.cli import main")


class Setup:
    """A venv with ``alpha 1.0`` installed by hand (managed: no baseline) and a manifest
    asking for ``delta`` from a local directory of wheels (``delta`` 1.0 and 1.1)."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.house = build_wheelhouse(tmp / "house")
        self.prefix = make_venv(tmp / "env")
        pip_install(self.prefix, ["alpha==1.0"], self.house)
        (self.prefix / ".lock").unlink(missing_ok=True)  # what uv's install left
        self.manifest = tmp / "manifest.yaml"
        self.write("delta")
        self.state = tmp / "state"
        self.tmp = tmp / "tmp"  # TMPDIR of every run: where constraints files go
        self.tmp.mkdir()
        self.env = {**env, "PYTHONPATH": str(REPO), "TMPDIR": str(self.tmp)}

    def write(self, requirement: str, pip: str = "") -> None:
        pip = pip or f"no_index: true, find_links: [{self.house}]"
        self.manifest.write_text(
            f"version: 1\ndefaults:\n  pip: {{{pip}}}\n"
            f"environments:\n  e:\n    prefix: {self.prefix}\n    pip: [{requirement!r}]\n"
        )

    def run(self, *args: str, probe: str = PROBE, **extra: str) -> tuple[dict[str, object], str]:
        """``reconciler --state-dir S plan MANIFEST ARGS``: (the probe's report, stdout)."""
        proc = subprocess.run(
            [sys.executable, "-c", probe, "--state-dir", str(self.state), "plan",
             str(self.manifest), *args],
            env={**self.env, **extra}, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        out, sep, last = proc.stdout.rstrip("\n").rpartition("\n")
        assert last.startswith("{"), proc.stdout + proc.stderr
        report: dict[str, object] = json.loads(last)
        return report, out + sep

    def prime(self, *args: str) -> None:
        """Plan twice: the first plan creates the state dir beside the prefix, whose
        directory the stamp covers (the prefix's identity), so that it is not
        remembered; the next one is."""
        for _ in range(2):
            self.run(*args)

    def left_behind(self) -> list[str]:
        """What a run left: a constraints file, or uv's ``.lock`` in the environment."""
        left = [p.name for p in self.tmp.iterdir()]
        return left + ([".lock"] if (self.prefix / ".lock").exists() else [])


@pytest.fixture
def setup(tmp_path: Path, isolated: dict[str, str]) -> Setup:
    return Setup(tmp_path, isolated)


def _replayed(report: dict[str, object]) -> bool:
    return report["planner"] is False


@pytest.mark.parametrize(
    ("flags", "code"), [((), 0), (("--detailed-exitcode",), 2), (("--json",), 0), (("-q",), 0)]
)
def test_a_repeated_pending_plan_is_replayed_as_the_full_path_prints_it(
    setup: Setup, flags: tuple[str, ...], code: int
) -> None:
    first, out = setup.run(*flags)
    assert not _replayed(first) and first["code"] == code, out
    assert "1 to install" in out or '"delta"' in out, out
    setup.run(*flags)
    full, full_out = setup.run(*flags, probe=FULL)
    for _ in range(2):
        again, again_out = setup.run(*flags)
        assert _replayed(again), again_out
        assert (again["code"], again_out) == (full["code"], full_out) == (code, out)
        assert setup.left_behind() == []


def test_the_exit_code_of_another_rendering_is_its_own(setup: Setup) -> None:
    """``plan`` and ``plan --detailed-exitcode`` print the same and exit differently."""
    setup.prime()
    setup.prime("--detailed-exitcode")
    plain, _ = setup.run()
    detailed, _ = setup.run("--detailed-exitcode")
    assert (_replayed(plain), plain["code"]) == (True, 0)
    assert (_replayed(detailed), detailed["code"]) == (True, 2)


def test_a_new_wheel_in_the_directory_is_planned_in_full(setup: Setup) -> None:
    setup.prime()
    assert _replayed(setup.run()[0])
    build_wheel(setup.house, "delta", "1.2")
    again, out = setup.run()
    assert not _replayed(again) and "delta 1.2" in out, out
    setup.run()
    assert _replayed(setup.run()[0])  # remembered again


def test_a_wheel_written_over_in_place_is_planned_in_full(setup: Setup, tmp_path: Path) -> None:
    """The wheel ``delta 1.1`` written over with one of the same size whose files clash
    with managed ``alpha``'s, its mtime put back: the plan refuses now."""
    setup.prime()
    first, out = setup.run()
    assert _replayed(first) and "install pip delta 1.1" in out, out
    wheel = next(setup.house.glob("delta-1.1-*.whl"))
    overwrite_in_place(  # its module is ``alpha`` (a name as long as ``delta``)
        wheel,
        [f'__version__ = "1.{n}"\n'.encode() for n in range(100)],
        lambda body: build_wheel(
            tmp_path, "delta", "1.1", module="alpha", extra={"alpha/__init__.py": body}
        ),
    )
    again, out = setup.run()
    assert not _replayed(again) and again["code"] not in (0, 2), out
    assert "alpha/__init__.py" in out, out


def test_a_preview_that_answers_otherwise_is_planned_in_full(setup: Setup) -> None:
    """Nothing stamped changed, but uv answers otherwise (an override file it is given
    by its own variable): the replay asks it again, and the full path plans."""
    setup.prime()
    first, out = setup.run()
    assert _replayed(first) and "install pip delta 1.1" in out, out
    overrides = setup.tmp.parent / "overrides.txt"
    overrides.write_text("delta==1.0\n")
    again, out = setup.run(UV_OVERRIDE=str(overrides))
    assert not _replayed(again) and "install pip delta 1.0" in out, out
    assert setup.left_behind() == []


def test_a_refused_plan_is_replayed_with_its_exit_code(setup: Setup) -> None:
    """``gamma`` needs ``beta>=2``, which needs ``alpha>=2``: managed ``alpha 1.0`` makes
    uv's dry run fail, and the plan explains the refusal from further dry runs. Asked
    again, they fail the same way (the same error): the refusal is replayed, exit 3."""
    setup.write("gamma")
    setup.prime()
    full, full_out = setup.run(probe=FULL)
    assert full["code"] == 3 and "refused" in full_out, full_out
    for _ in range(2):
        again, out = setup.run()
        assert _replayed(again) and (again["code"], out) == (3, full_out)
    assert setup.left_behind() == []


def test_a_refusal_decided_without_uv_is_not_remembered(setup: Setup) -> None:
    """A requested upgrade of managed ``alpha`` is refused before any dry run: there is
    nothing to ask again, and such a plan is planned every time."""
    setup.write("alpha==2.0")
    for _ in range(3):
        report, out = setup.run()
        assert not _replayed(report) and report["code"] == 3, out


def test_a_request_by_url_is_refused_at_every_run_and_never_remembered(setup: Setup) -> None:
    """The manifest refuses a direct reference before anything is read or run (the
    replay's own check of a request by URL or path is a second guard): every run says
    so, and nothing is remembered that a later run could answer from."""
    wheel = next(setup.house.glob("delta-1.1-*.whl"))
    setup.write(f"delta @ {wheel.as_uri()}")
    for _ in range(3):
        report, out = setup.run()
        assert report["code"] == 1 and out == "", out
    assert not setup.state.exists()


def test_a_held_back_note_is_replayed_while_uv_says_the_same_of_what_is_newest(
    setup: Setup,
) -> None:
    """``beta 2.0`` needs ``alpha>=2``; managed ``alpha 1.0`` holds it back at 1.0, and
    the plan says so from uv's answer of what is newest (``uv pip compile --no-deps``):
    a replay asks that question again with the dry run. The state dir exists before
    the first plan, which asks it beside its dry run (with no record, nothing is
    speculative), the next ones after it. Once uv answers otherwise (an override file,
    by its own variable, that the dry run's answer does not show), the plan is made in
    full and says nothing is held back."""
    setup.write("beta")
    setup.state.mkdir()
    time.sleep(0.1)  # past the clock slack: the first plan may be remembered
    first, out = setup.run()
    assert not _replayed(first) and "held back: newest is 2.0" in out, out
    full, full_out = setup.run(probe=FULL)
    for _ in range(2):
        again, again_out = setup.run()
        assert _replayed(again) and (again["code"], again_out) == (full["code"], full_out)
    overrides = setup.tmp.parent / "overrides.txt"
    overrides.write_text("beta==1.0\n")
    again, out = setup.run(UV_OVERRIDE=str(overrides))
    assert not _replayed(again) and "install pip beta 1.0" in out, out
    assert "held back" not in out, out
    assert setup.left_behind() == []


def test_an_installed_file_a_wheel_would_overwrite_changing_is_planned_in_full(
    setup: Setup,
) -> None:
    """``zeta`` ships ``alpha/__init__.py`` with the bytes managed ``alpha`` installed:
    no clash. Once that installed file holds other bytes (site-packages lists the same
    names), the same wheel would overwrite it: the plan refuses."""
    installed = next(setup.prefix.glob("lib/python*/site-packages/alpha/__init__.py"))
    build_wheel(setup.house, "zeta", "1.0", extra={"alpha/__init__.py": installed.read_bytes()})
    setup.write("zeta")
    setup.prime()
    first, out = setup.run()
    assert _replayed(first) and "install pip zeta 1.0" in out, out
    installed.write_bytes(installed.read_bytes() + b"# changed by hand\n")
    again, out = setup.run()
    assert not _replayed(again) and again["code"] not in (0, 2), out
    assert "would overwrite alpha/__init__.py" in out, out


def test_a_file_a_wheel_would_write_appearing_in_a_new_directory_is_planned_in_full(
    setup: Setup,
) -> None:
    """``delta``'s wheel writes ``delta/__init__.py`` under a directory the venv does not
    have: the replay stamps that directory, not each file the wheel writes under it.
    Once the directory and that file appear, listed in managed ``alpha``'s RECORD, the
    wheel would overwrite a managed file: the plan refuses."""
    setup.prime()
    first, out = setup.run()
    assert _replayed(first) and "install pip delta 1.1" in out, out
    site = next(setup.prefix.glob("lib/python*/site-packages"))
    (site / "delta").mkdir()
    (site / "delta" / "__init__.py").write_text("# alpha's\n")
    record = site / "alpha-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + "delta/__init__.py,,\n")
    again, out = setup.run()
    assert not _replayed(again) and again["code"] == 3, out
    assert "would overwrite delta/__init__.py" in out, out


def test_a_venv_whose_pyvenv_cfg_was_touched_is_planned_in_full(setup: Setup) -> None:
    """A venv's image identity is its pyvenv.cfg's bytes and mtime: the same bytes with
    another mtime (a venv recreated) is an image change the plan reports."""
    subprocess.run(
        [sys.executable, "-m", "reconciler", "--state-dir", str(setup.state), "baseline",
         "capture", str(setup.manifest)],
        env=setup.env, check=True, capture_output=True,
    )  # fmt: skip
    setup.prime()
    first, out = setup.run("--json")  # another rendering rewrites the preview record
    first, out = setup.run("--json")
    assert _replayed(first), out
    cfg = setup.prefix / "pyvenv.cfg"
    st = cfg.stat()
    os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))
    setup.run("--json")  # plans in full and records its preview with the new stamp
    again, out = setup.run()
    assert not _replayed(again) and "changed since the baseline" in out, out


#: Runs the entry point; stops the first uv dry run it starts once it holds uv's lock on
#: the environment, and says so on stderr.
STOPPING = r"""
import os, signal, subprocess, sys, time
_init = subprocess.Popen.__init__
def init(self, args, *a, **k):
    _init(self, args, *a, **k)
    if "--dry-run" in [str(x) for x in args]:
        lock = os.path.join(os.environ["STOP_PREFIX"], ".lock")
        for _ in range(5000):
            if os.path.exists(lock):
                break
            time.sleep(0.001)
        os.kill(self.pid, signal.SIGSTOP)
        sys.stderr.write(f"stopped {self.pid}\n")
        sys.stderr.flush()
subprocess.Popen.__init__ = init
from reconciler.entry import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_while_the_replay_waits_leaves_nothing_behind(setup: Setup) -> None:
    """SIGTERM while the replay waits for its dry run (stopped, holding uv's lock): exit
    143 at once, the uv process gone, its constraints file and uv's .lock removed."""
    setup.prime()
    assert _replayed(setup.run()[0])
    proc = subprocess.Popen(
        [sys.executable, "-c", STOPPING, "--state-dir", str(setup.state), "plan",
         str(setup.manifest)],
        env={**setup.env, "STOP_PREFIX": str(setup.prefix)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("stopped "), line + proc.stderr.read()
    pid = int(line.split()[1])
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(1000):  # SIGSTOP is delivered at once, acted on a moment later
        if stat.read_text().rpartition(")")[2].split()[0] == "T":
            break
        time.sleep(0.001)
    assert stat.read_text().rpartition(")")[2].split()[0] == "T"  # stopped, not ended
    assert (setup.prefix / ".lock").exists()
    time.sleep(0.3)  # the replay waits for it
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, out + err
    assert not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z"
    assert setup.left_behind() == []


def test_a_dry_run_that_fails_otherwise_is_planned_in_full(setup: Setup) -> None:
    """The refusal of ``gamma`` replayed; then uv is given an override (by its own
    variable: nothing stamped changes) under which its dry run still fails, for
    another reason: the error it prints is part of its answer, and the plan is made
    in full."""
    setup.write("gamma")
    setup.prime()
    first, out = setup.run()
    assert _replayed(first) and first["code"] == 3, out
    overrides = setup.tmp.parent / "overrides.txt"
    overrides.write_text("alpha==2.0\n")  # managed alpha 1.0 pinned: the same failure, said so
    full, full_out = setup.run(probe=FULL, UV_OVERRIDE=str(overrides))
    again, out = setup.run(UV_OVERRIDE=str(overrides))
    assert not _replayed(again), out
    assert (again["code"], out) == (full["code"], full_out)


@pytest.mark.parametrize("beside", ["", "find_links"])
def test_a_plan_that_asked_an_index_is_never_replayed(
    setup: Setup, tmp_path: Path, beside: str
) -> None:
    """An index alone: the clash check reads it. An index beside the local directory:
    the clash check finds the wheel in the directory (no HTTP read), but what is newest
    is asked ``--offline`` of what the dry run left in uv's cache, and a replay, which
    asks both at once, would not see a release the dry run just read. Either plan is
    planned every time."""
    with serve(build_simple_index(setup.house, tmp_path / "index")) as server:
        pip = f"index_url: '{server.url}simple/'"
        setup.write("delta", pip=f"{pip}, find_links: [{setup.house}]" if beside else pip)
        for _ in range(3):
            report, out = setup.run()
            assert not _replayed(report) and "install pip delta 1.1" in out, out


def test_the_record_starts_only_the_exact_shapes_it_records(setup: Setup) -> None:
    """A recorded dry run or question of what is newest with one more option (a file to
    write, a build allowed) or another variable (LD_PRELOAD) is never started."""
    from reconciler.backends import speculative as sp
    from reconciler.backends.child_env import uv_in_venv
    from reconciler.backends.pip_args import isolation_env

    setup.write("beta")  # held back: its plan asks what is newest too
    setup.prime()
    uv = uv_in_venv()
    assert uv is not None
    recorded = [inv for entry in sp._load(str(setup.state)).values() for inv, _, _ in entry]
    kinds = {inv.argv[2]: inv for inv in recorded}
    assert sorted(kinds) == ["compile", "install"], recorded
    assert sp._a_preview(kinds["install"], uv) and sp._a_question(kinds["compile"], uv)
    for inv, shape in ((kinds["install"], sp._a_preview), (kinds["compile"], sp._a_question)):
        # Options inserted where the recorded ones are (after --output-format json, or
        # --offline): before the dry run's "--", which makes the rest requirements.
        where = inv.argv.index("json" if shape is sp._a_preview else "--offline") + 1
        for option in (["--output-file", str(setup.tmp / "victim")], ["--config-file", "x"]):
            argv = [*inv.argv[:where], *option, *inv.argv[where:]]
            at = inv.at + 2 if inv.at > where else inv.at
            edited = sp._Invocation(inv.python, argv, at, inv.constraints, inv.additions, inv.paths)
            assert not shape(edited, uv), argv
        argv = [a for a in inv.argv if a != "--no-build"]
        at = inv.at - 1 if inv.at > inv.argv.index("--no-build") else inv.at
        edited = sp._Invocation(inv.python, argv, at, inv.constraints, inv.additions, inv.paths)
        assert not shape(edited, uv), argv
        preload = {**inv.additions, "LD_PRELOAD": "/tmp/evil.so"}
        edited = sp._Invocation(inv.python, inv.argv, inv.at, inv.constraints, preload, inv.paths)
        assert not shape(edited, uv)
    assert sp._additions_allowed(sp._Invocation("p", [], -1, "", isolation_env(), []))


def test_a_replay_starts_the_questions_its_remembered_plan_asked_and_no_other() -> None:
    """Whether a plan asks what is newest beside its dry run depends on whether that dry
    run still runs when the planner takes it, and the record keeps the questions any
    plan of the manifest asked: a replay starts a recorded question only when the
    answers it compares hold one asked of that interpreter (its answer says so)."""
    from reconciler.backends.speculative import _asked, _Invocation, answer

    python = "/envs/e/bin/python"
    dry = _Invocation(python, ["uv", "pip", "install", "--dry-run"], -1, "", {}, [python])
    question = _Invocation(python, ["uv", "pip", "compile", ""], 3, "delta\n", {}, [python])
    other = _Invocation("/envs/f/bin/python", question.argv, 3, "delta\n", {}, [python])
    dry_answer, asked = answer(dry, 0, "{}", ""), answer(question, 0, "delta==1.1\n", "")
    assert not dry_answer.startswith("newest:") and asked.startswith("newest:")
    assert _asked(question, [dry_answer, asked])
    assert not _asked(question, [dry_answer])  # that plan asked none
    assert not _asked(other, [dry_answer, asked])  # one of another environment


def test_only_a_plan_notes_the_paths_its_clash_check_looked_at(setup: Setup) -> None:
    """A plan notes the paths its clash check looked at (its replay stamps them); an
    apply, which is never replayed, works none of them out."""
    probe = (
        "import sys, json; from reconciler.entry import main; "
        "from reconciler.backends import outside; code = main(sys.argv[1:]); "
        "print(json.dumps({'code': code, 'files': len(outside.files())}))"
    )
    noted = {}
    for command in ("plan", "apply"):
        proc = subprocess.run(
            [sys.executable, "-c", probe, "--state-dir", str(setup.state), command,
             str(setup.manifest)],
            env=setup.env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        report = json.loads(proc.stdout.rstrip("\n").rpartition("\n")[2])
        assert report["code"] == 0, proc.stdout + proc.stderr
        noted[command] = report["files"]
    assert noted["plan"] > 0 and noted["apply"] == 0, noted


def test_a_plan_past_the_bound_of_checked_paths_is_noted_once() -> None:
    from reconciler.backends import outside

    outside.clear()
    try:
        for i in range(outside.MAX_FILES + 3):
            outside.depend(f"/env/site-packages/p{i}")
        outside.depend("/env/site-packages/p0")  # already noted: within the bound
        assert len(outside.files()) == outside.MAX_FILES
        assert outside.asked() == (f"more than {outside.MAX_FILES} files",)
    finally:
        outside.clear()
