"""The no-op fast path of ``reconciler apply`` and ``plan`` (reconciler/fastpath.py, entry.py).

It must answer a repeated no-op without loading the planner, print exactly what
the full path prints (``plan``: text, ``-q``, ``-v``, ``--json``, exit codes),
and must never answer "nothing to do" once anything the plan depends on changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler import fastpath
from reconciler.entry import _CLOCK_SLACK_NS
from reconciler.fastpath import CACHE
from tests.support.envs import make_conda_prefix, make_venv, pip_install, tree_hash

REPO = Path(__file__).resolve().parents[1]
PROBE = (
    "import sys, json; from reconciler.entry import main; code = main(sys.argv[1:]); "
    "print(json.dumps({'code': code, 'planner': 'reconciler.plan.planner' in sys.modules, "
    "'yaml': 'yaml' in sys.modules}))"
)
#: The full path alone (no fast path), to compare outputs with.
FULL = PROBE.replace("from reconciler.entry import main", "from reconciler.cli import main")


def _apply(env: dict[str, str], state: Path, manifest: Path) -> tuple[dict[str, object], str]:
    """Run apply in a fresh interpreter; report whether the planner was imported."""
    result, out, err = _run(env, state, "apply", manifest)
    return result, out + err


def _run(
    env: dict[str, str], state: Path, *args: str | Path, probe: str = PROBE
) -> tuple[dict[str, object], str, str]:
    """Run reconciler in a fresh interpreter: (code and imports, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", probe, "--state-dir", str(state), *map(str, args)],
        env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    out, sep, last = proc.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("{"), proc.stdout + proc.stderr
    result: dict[str, object] = json.loads(last)
    return result, out + sep, proc.stderr


def _full_plan(env: dict[str, str], state: Path, *args: str | Path) -> tuple[object, str]:
    """What the full path prints and returns for ``plan ARGS``."""
    result, out, err = _run(env, state, "plan", *args, probe=FULL)
    assert result["planner"] is True and not err, err
    return result["code"], out


@pytest.fixture
def applied(
    tmp_path: Path, wheelhouse: Path, channel: Path, isolated: dict[str, str]
) -> tuple[Path, Path, Path, Path, dict[str, str]]:
    image = make_conda_prefix(tmp_path / "image", channel, ["pyfoo ==1.0"], hybrid=True)
    pip_install(image, ["alpha==1.0"], wheelhouse)
    tools = make_venv(tmp_path / "tools")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"version: 1\ndefaults:\n  channels: [{channel.as_uri()}]\n"
        f"  pip: {{no_index: true, find_links: [{wheelhouse}]}}\n"
        f"environments:\n"
        f"  image:\n    prefix: {image}\n    conda: [condaonly]\n    pip: [delta]\n"
        f"  tools:\n    prefix: {tools}\n    pip: [beta]\n"
    )
    state = tmp_path / "state"
    first, out = _apply(isolated, state, manifest)
    assert first["code"] == 0, out
    return image, tools, manifest, state, isolated


def test_repeated_noop_apply_skips_the_planner_and_writes_nothing(
    applied: tuple[Path, Path, Path, Path, dict[str, str]],
) -> None:
    image, tools, manifest, state, env = applied
    before = tree_hash(image, tools, state)
    result, out = _apply(env, state, manifest)
    assert result == {"code": 0, "planner": False, "yaml": False}
    assert out.strip() == "No changes: 2 environments already match the manifest."
    assert tree_hash(image, tools, state) == before


def _past_clock_slack() -> None:
    """Wait until a change made just now is older than the fast path's clock slack: a plan
    that starts within it of a change to what the stamp covers does not remember."""
    time.sleep(2 * _CLOCK_SLACK_NS / 1e9)


def test_a_hand_change_takes_the_full_path(
    applied: tuple[Path, Path, Path, Path, dict[str, str]], wheelhouse: Path
) -> None:
    _image, tools, manifest, state, env = applied
    pip_install(tools, ["delta==1.0"], wheelhouse)  # a foreign package appears
    result, out = _apply(env, state, manifest)
    assert result["planner"] is True and result["code"] == 0, out
    # The manifest's model is remembered: the full path parses no YAML either.
    assert result["yaml"] is False
    # Now met again (the foreign delta is not declared in tools): fast from here on.
    result, _ = _apply(env, state, manifest)
    assert result["planner"] is False


def test_a_removed_package_is_reinstalled_not_skipped(
    applied: tuple[Path, Path, Path, Path, dict[str, str]], isolated: dict[str, str]
) -> None:
    _image, tools, manifest, state, env = applied
    from tests.support.envs import uv_bin

    subprocess.run(
        [uv_bin(), "pip", "uninstall", "--python", str(tools / "bin" / "python"), "beta"],
        env=isolated, check=True, capture_output=True,
    )  # fmt: skip
    result, out = _apply(env, state, manifest)
    assert result["planner"] is True and result["code"] == 0
    assert "+ install pip beta" in out


def test_an_edited_manifest_or_state_takes_the_full_path(
    applied: tuple[Path, Path, Path, Path, dict[str, str]],
) -> None:
    _image, _tools, manifest, state, env = applied
    manifest.write_text(manifest.read_text() + "# a comment changes the bytes\n")
    result, _ = _apply(env, state, manifest)
    assert result["planner"] is True
    result, _ = _apply(env, state, manifest)
    assert result["planner"] is False
    baseline = next(state.glob("envs/image-*/baseline.json"))
    baseline.write_text(baseline.read_text())  # a new mtime: the baseline may differ
    result, _ = _apply(env, state, manifest)
    assert result["planner"] is True


#: :data:`PROBE`, with the manifest (the last argument) edited once the full path is
#: done, before the entry point remembers what it met.
EDITED_WHILE_IT_RAN = PROBE.replace(
    "from reconciler.entry import main;",
    "from pathlib import Path; import reconciler.cli as cli; real = cli.main; "
    "edit = lambda p: p.write_text(p.read_text() + '# edited while it ran\\n'); "
    "cli.main = lambda *a, **k: (real(*a, **k), edit(Path(sys.argv[-1])))[0]; "
    "from reconciler.entry import main;",
)


def test_a_manifest_edited_while_an_apply_ran_is_not_remembered_as_met(
    applied: tuple[Path, Path, Path, Path, dict[str, str]],
) -> None:
    """What the apply met is the manifest it read: other bytes there at its end (an
    edit, a pull) take the full path next time."""
    _image, _tools, manifest, state, env = applied
    manifest.write_text(manifest.read_text() + "# a comment changes the bytes\n")
    result, _, err = _run(env, state, "apply", manifest, probe=EDITED_WHILE_IT_RAN)
    assert result["planner"] is True and result["code"] == 0, err
    assert manifest.read_text().endswith("# edited while it ran\n")
    result, _ = _apply(env, state, manifest)
    assert result["planner"] is True


def test_other_shapes_of_apply_always_plan(
    applied: tuple[Path, Path, Path, Path, dict[str, str]],
) -> None:
    _image, _tools, manifest, state, env = applied
    out = manifest.parent / "saved-plan.json"
    shapes = (
        ["apply", manifest, "--json"], ["apply", manifest, "--partial"],
        ["apply", manifest, "--env", "image", "--json"], ["-v", "apply", manifest],
        ["plan", manifest, "--out", out], ["plan", manifest, "--env=image"],
    )  # fmt: skip
    for shape in shapes:
        for _ in range(2):
            result, _, _ = _run(env, state, *shape)
            assert result["planner"] is True, shape
    assert json.loads(out.read_text())["format_version"] == "1"


PLAN_SHAPES = (
    [], ["--json"], ["-q"], ["-v"], ["--detailed-exitcode"], ["--json", "--detailed-exitcode"],
    ["--env", "tools"], ["--env", "image", "-q"],
)  # fmt: skip


def test_repeated_noop_plan_prints_what_the_full_path_prints(
    applied: tuple[Path, Path, Path, Path, dict[str, str]],
) -> None:
    image, tools, manifest, state, env = applied
    for shape in PLAN_SHAPES:
        code, expected = _full_plan(env, state, manifest, *shape)
        assert code == 0 and expected.strip(), shape
        first, out, _ = _run(env, state, "plan", manifest, *shape)
        assert (first["code"], out) == (0, expected), shape
        before = tree_hash(image, tools, state)
        again, out, err = _run(env, state, "plan", manifest, *shape)
        assert again == {"code": 0, "planner": False, "yaml": False}, shape
        assert (out, err) == (expected, ""), shape
        assert tree_hash(image, tools, state) == before
    # -q before the command, as argparse accepts it too.
    code, expected = _full_plan(env, state, manifest, "-q")
    result, out, _ = _run(env, state, "-q", "plan", manifest)
    assert result["planner"] is False and out == expected
    doc = json.loads(_full_plan(env, state, manifest, "--json")[1])
    assert doc["summary"]["environments"] == 2 and doc["manifest"]["path"] == str(manifest)


def _plan_is_fast(env: dict[str, str], state: Path, manifest: Path, *shape: str) -> bool:
    """Plan twice (the first may remember); whether the second answered without the planner."""
    _run(env, state, "plan", manifest, *shape)
    result, _, _ = _run(env, state, "plan", manifest, *shape)
    return result["planner"] is False


def test_any_change_makes_plan_take_the_full_path(
    applied: tuple[Path, Path, Path, Path, dict[str, str]], wheelhouse: Path
) -> None:
    image, tools, manifest, state, env = applied
    shape = ("--json", "--detailed-exitcode")
    assert _plan_is_fast(env, state, manifest, *shape)
    _, before = _full_plan(env, state, manifest, *shape)

    def after_change() -> tuple[dict[str, object], str]:
        _past_clock_slack()
        result, out, _ = _run(env, state, "plan", manifest, *shape)
        assert result["planner"] is True
        assert (result["code"], out) == _full_plan(env, state, manifest, *shape)
        return result, out

    # A foreign package appears: still nothing to do, but the state's fingerprint changed.
    pip_install(tools, ["delta==1.0"], wheelhouse)
    result, out = after_change()
    assert result["code"] == 0 and out != before
    assert _plan_is_fast(env, state, manifest, *shape)
    # A declared package goes: pending (exit 2), planned in full. Repeated, that plan is
    # replayed: its uv dry run, started again, answers the same (tests/test_replay.py).
    from tests.support.envs import uv_bin

    subprocess.run(
        [uv_bin(), "pip", "uninstall", "--python", str(tools / "bin" / "python"), "beta"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    result, out = after_change()
    assert result["code"] == 2 and '"name": "beta"' in out
    again, again_out, _ = _run(env, state, "plan", manifest, *shape)
    assert (again["planner"], again["code"], again_out) == (False, 2, out)
    pip_install(tools, ["beta==1.0"], wheelhouse)
    after_change()
    assert _plan_is_fast(env, state, manifest, *shape)
    # The image's history is rewritten (its identity), with the same records.
    history = image / "conda-meta" / "history"
    history.write_text(history.read_text().replace("image build", "another image build"))
    after_change()
    assert _plan_is_fast(env, state, manifest, *shape)
    # The recorded baseline may differ (a new mtime), then the manifest's bytes.
    baseline = next(state.glob("envs/tools-*/baseline.json"))
    baseline.write_text(baseline.read_text())
    after_change()
    assert _plan_is_fast(env, state, manifest, *shape)
    manifest.write_text(manifest.read_text() + "# a comment changes the bytes\n")
    after_change()
    assert _plan_is_fast(env, state, manifest, *shape)


def test_a_change_while_the_full_plan_ran_is_not_remembered(tmp_path: Path) -> None:
    from reconciler import fastpath

    prefix = tmp_path / "env"
    site = prefix / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    inputs = fastpath.Inputs([str(prefix)], [str(site)], [], [])
    state = tmp_path / "state"
    started = time.time_ns() - 1_000_000_000
    (site / "alpha-1.0.dist-info").mkdir()  # after the run started
    fastpath.remember(
        str(state), "0", b"m", [], inputs, 1, output="x\n", unchanged_since_ns=started
    )
    assert not (state / fastpath.CACHE).exists()
    manifest = tmp_path / "m.yaml"
    manifest.write_bytes(b"m")
    fastpath.remember(
        str(state), "0", b"m", [], inputs, 1, output="x\n", unchanged_since_ns=time.time_ns()
    )
    hit = fastpath.matches(str(state), "0", str(manifest), [])
    assert hit is not None and (hit.count, hit.output) == (1, "x\n")
    os.rmdir(site / "alpha-1.0.dist-info")
    assert fastpath.matches(str(state), "0", str(manifest), []) is None


#: What the fast answer must not import: each costs more than the answer itself (json
#: pulls re and enum; hashlib loads OpenSSL; typing, pathlib and dataclasses are the
#: planner's world).
HEAVY = (
    "argparse", "collections", "contextlib", "dataclasses", "enum", "hashlib", "json",
    "pathlib", "re", "typing", "reconciler.cli", "reconciler.state.store",
)  # fmt: skip
IMPORTS = (
    "import sys; before = set(sys.modules); from reconciler.entry import main; "
    "code = main(sys.argv[1:]); new = sorted(set(sys.modules) - before); "
    "import json; print(json.dumps({'code': code, 'new': new}))"
)


@pytest.mark.parametrize("command", ["apply", "plan"])
def test_the_fast_answer_imports_only_what_it_uses(
    applied: tuple[Path, Path, Path, Path, dict[str, str]], command: str
) -> None:
    _image, _tools, manifest, state, env = applied
    _run(env, state, command, manifest)  # a plan remembers its output on the first run
    result, out, err = _run(env, state, command, manifest, probe=IMPORTS)
    assert (result["code"], err) == (0, ""), out + err
    assert out.rstrip().endswith("match the manifest.")
    new = result["new"]
    assert isinstance(new, list)
    assert sorted(set(new) & set(HEAVY)) == []
    assert "reconciler.fastpath" in new  # it did answer from the stamp


#: Whether ``typing`` was imported before the first process started (an audit hook).
FIRST_PROCESS = (
    "import sys; seen = []\n"
    "def hook(event, args):\n"
    "    if event == 'subprocess.Popen' and 'spawn' not in seen: seen.append('spawn')\n"
    "    if event == 'import' and args[0] == 'typing' and 'typing' not in seen: "
    "seen.append('typing')\n"
    "sys.addaudithook(hook)\n"
    "before = 'typing' in sys.modules\n"
    "from reconciler.entry import main; code = main(sys.argv[1:])\n"
    "import json; print(json.dumps({'code': code, 'seen': seen, 'before': before}))"
)


def test_a_plan_starts_its_installer_before_it_imports_typing(
    applied: tuple[Path, Path, Path, Path, dict[str, str]],
) -> None:
    """A plan with something to install (no record: its own dry run) imports the planner,
    reads the environment and starts uv's dry run without typing (~2 ms, 28 of its
    modules used it for annotations only); what imports it comes after, beside the dry
    run."""
    _image, _tools, manifest, state, env = applied
    edited = manifest.with_name("edited.yaml")
    edited.write_text(manifest.read_text().replace("pip: [beta]", "pip: [beta, epsilon-pkg]"))
    result, out, err = _run(env, state, "plan", edited, "--env", "tools", probe=FIRST_PROCESS)
    assert (result["code"], err) == (0, ""), out + err
    assert "+ install pip epsilon-pkg 1.0" in out
    assert result["before"] is False
    seen = result["seen"]
    assert isinstance(seen, list) and seen[:1] == ["spawn"], result


def _stamped_tree(tmp_path: Path) -> fastpath.Inputs:
    """Inputs over a small prefix, state dir and find-links directory."""
    prefix = tmp_path / "env"
    site = prefix / "lib" / "python3.11" / "site-packages"
    (site / "alpha-1.0.dist-info").mkdir(parents=True)
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "history").write_text("==> 2024 <==\n")
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "alpha-1.0-py3-none-any.whl").write_bytes(b"PK")
    baseline = tmp_path / "state" / "baseline.json"
    baseline.parent.mkdir()
    baseline.write_text("{}")
    return fastpath.Inputs(
        [str(prefix)], [str(site)], [], [str(baseline)], [str(prefix)], [str(wheels)],
        [str(prefix / "bin" / "python")],
    )  # fmt: skip


def test_a_stamp_of_what_was_measured_beside_the_dry_run_is_the_same(tmp_path: Path) -> None:
    """A plan reads what its stamp covers beside its dry run (fastpath.measure); the stamp
    made from that at its end is the one made from the files themselves."""
    inputs = _stamped_tree(tmp_path)
    measured = fastpath.measure(inputs)
    assert ("source", str(tmp_path / "wheels")) in measured
    direct = fastpath.stamp("0", b"m", ["env=a"], inputs)
    assert fastpath.stamp("0", b"m", ["env=a"], inputs, measured) == direct


def test_a_change_after_the_measure_is_not_remembered(tmp_path: Path) -> None:
    """What was measured is taken only with the check that nothing the stamp covers was
    modified since the plan started: a dist-info added after the measure leaves nothing
    remembered (the stamp would be of what was there before it)."""
    inputs = _stamped_tree(tmp_path)
    started = time.time_ns()
    time.sleep(0.01)
    measured = fastpath.measure(inputs)
    site = Path(inputs.site_dirs[0])
    (site / "beta-1.0.dist-info").mkdir()
    state, manifest = tmp_path / "state", tmp_path / "m.yaml"
    manifest.write_bytes(b"m")
    fastpath.remember(
        str(state), "0", b"m", [], inputs, 1, output="plan\n",
        unchanged_since_ns=started, measured=measured,
    )  # fmt: skip
    assert fastpath.matches(str(state), "0", str(manifest), []) is None
    # Without the change it is remembered, and the next answer holds.
    (site / "beta-1.0.dist-info").rmdir()
    time.sleep(2 * _CLOCK_SLACK_NS / 1e9)
    started = time.time_ns()
    measured = fastpath.measure(inputs)
    fastpath.remember(
        str(state), "0", b"m", [], inputs, 1, output="plan\n",
        unchanged_since_ns=started, measured=measured,
    )  # fmt: skip
    hit = fastpath.matches(str(state), "0", str(manifest), [])
    assert hit is not None and hit.output == "plan\n"


def test_work_queued_beside_the_next_process_runs_once_after_it_starts() -> None:
    """reconciler.backends.process.beside: run after the next process starts, once; what
    no process started for is dropped with forget_beside."""
    from reconciler.backends import process

    ran: list[str] = []
    process.beside(lambda: ran.append("first"))
    assert ran == []
    process.run([sys.executable, "-c", "pass"])
    process.run([sys.executable, "-c", "pass"])
    assert ran == ["first"]
    process.beside(lambda: ran.append("dropped"))
    process.forget_beside()
    process.run([sys.executable, "-c", "pass"])
    assert ran == ["first"]


def test_an_interrupt_in_work_beside_a_process_leaves_no_process_running() -> None:
    """Ctrl-C (KeyboardInterrupt) in what runs beside a process just started: the process
    is killed and reaped before the interrupt goes on."""
    from reconciler.backends import process

    mark = f"beside-sleeper-{os.getpid()}-{time.time_ns()}"
    started: list[int] = []

    def record_and_interrupt() -> None:
        started.extend(int(p) for p in os.listdir("/proc") if p.isdigit() and _runs(int(p), mark))
        raise KeyboardInterrupt

    process.beside(record_and_interrupt)
    with pytest.raises(KeyboardInterrupt):
        process.run([sys.executable, "-c", "import time; time.sleep(60)", mark])
    assert len(started) == 1
    assert not _runs(started[0], mark)


def _runs(pid: int, mark: str) -> bool:
    """Whether process ``pid`` (not a zombie) has ``mark`` on its command line."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            marked = mark.encode() in f.read()
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return marked and state != "Z"


def test_a_damaged_stamp_cache_is_a_miss(tmp_path: Path) -> None:
    """A truncated or edited cache file never gives a wrong answer: the damaged entry is a
    miss (the full plan decides), an intact one still answers."""
    from reconciler import fastpath

    prefix = tmp_path / "env"
    site = prefix / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    manifest = tmp_path / "m.yaml"
    manifest.write_bytes(b"m")
    state = tmp_path / "state"
    inputs = fastpath.Inputs([str(prefix)], [str(site)], [], [str(tmp_path / "baseline.json")])
    fastpath.remember(str(state), "0", b"m", ["env=a"], inputs, 1, output="plan\ntext\n")
    fastpath.remember(str(state), "0", b"m", ["env=b"], inputs, 2)
    hit = fastpath.matches(str(state), "0", str(manifest), ["env=a"])
    assert hit is not None and (hit.count, hit.output) == (1, "plan\ntext\n")
    hit = fastpath.matches(str(state), "0", str(manifest), ["env=b"])
    assert hit is not None and (hit.count, hit.output) == (2, None)
    path = state / fastpath.CACHE
    good = path.read_bytes()
    edits = [good[:n] for n in range(len(good))]
    edits += [good + b"\0", good.replace(b"\x001\x00", b"\x00x\x00", 1), b"\xff" + good]
    edits += [
        good.replace(b"\x002\x00", b"\x003\x00", 1),
        good.replace(f"\0{fastpath.FORMAT}\0".encode(), b"\x002\x00"),
    ]
    for damaged in edits:
        path.write_bytes(damaged)
        a = fastpath.matches(str(state), "0", str(manifest), ["env=a"])
        assert a is None or (a.count, a.output) == (1, "plan\ntext\n"), damaged
        # env=b is the last entry: every edit above damages it (or the whole file).
        assert fastpath.matches(str(state), "0", str(manifest), ["env=b"]) is None, damaged
    # A NUL cannot be stored: nothing is remembered rather than a wrong entry.
    path.unlink()
    fastpath.remember(str(state), "0", b"m", [], inputs, 1, output="a\0b")
    assert not path.exists()


def test_the_notebook_plan_by_env_prefix_is_answered_like_the_full_path(
    applied: tuple[Path, Path, Path, Path, dict[str, str]], wheelhouse: Path
) -> None:
    """``%reconcile plan`` runs ``--notebook plan MANIFEST --env-prefix sys.prefix``: the
    second one of an unchanged setup is the fast path's, byte for byte the full path's."""
    image, tools, manifest, state, env = applied
    shim = ("--notebook", "plan", manifest, "--env-prefix")  # the kernel shim's order

    def plan(prefix: Path, *more: str) -> tuple[dict[str, object], str, str]:
        return _run(env, state, *shim, prefix, *more)

    def full(prefix: Path, *more: str) -> tuple[object, str, str]:
        result, out, err = _run(env, state, *shim, prefix, *more, probe=FULL)
        assert result["planner"] is True or result["code"] == 1  # an error before planning
        return result["code"], out, err

    expected = full(tools)
    assert expected[0] == 0 and expected[1].strip() and expected[2] == "", expected
    first, out, err = plan(tools)
    assert (first["code"], out, err) == expected and first["planner"] is True
    for more in ((), ("-q",), ("--json",)):
        plan(tools, *more)  # the first of each shape may remember
        again, out, err = plan(tools, *more)
        assert again == {"code": 0, "planner": False, "yaml": False}, more
        assert (0, out, err) == full(tools, *more), more
    # Another prefix names another environment: its own answer, never tools'.
    result, out, _ = plan(image)
    assert result["planner"] is True and (0, out, "") == full(image) and out != expected[1]
    # A symlink to the prefix names the same environment; re-pointed, another one.
    link = tools.parent / "kernel-prefix"
    link.symlink_to(tools)
    _past_clock_slack()  # a link made as the plan starts may not be in what it printed
    assert (0, *plan(link)[1:]) == full(link) and plan(link)[0]["planner"] is False
    link.unlink()
    link.symlink_to(image)
    result, out, _ = plan(link)
    assert result["planner"] is True and (0, out, "") == full(image)
    # A change in the environment, or in the manifest, takes the full path.
    assert plan(tools)[0]["planner"] is False
    pip_install(tools, ["delta==1.0"], wheelhouse)
    _past_clock_slack()
    result, out, _ = plan(tools)
    assert result["planner"] is True and (0, out, "") == full(tools)
    assert plan(tools)[0]["planner"] is False
    later = tools.parent / "later"
    manifest.write_text(manifest.read_text() + f"  later:\n    prefix: {later}\n    pip: [beta]\n")
    assert plan(tools)[0]["planner"] is True
    assert plan(tools)[0]["planner"] is False
    # Another environment's prefix comes to be a symbolic link (to this one): the manifest
    # is invalid now, and that is the full path's error, every time.
    later.symlink_to(tools)
    error = (
        f"error: {manifest}:14:13: environments.later.prefix: prefix '{later}' resolves "
        f"through the symbolic link {later} to {tools}; write the real path (an environment "
        "has one name: its lock, baseline and owned packages are kept under it)\n"
        "  hint: 1 problem; fix the manifest and run `reconciler validate` again\n"
    )
    for _ in range(2):
        result, out, err = plan(tools)
        assert (result["code"], out, err) == (1, "", error) == full(tools)
    later.unlink()  # back as it was remembered: answered fast again, as the full path does
    result, out, err = plan(tools)
    assert result["planner"] is False and (0, out, err) == full(tools)
    # No environment at that prefix, or --env beside it: the full path's errors.
    for args in ((manifest.parent,), (tools, "--env", "tools")):
        for _ in range(2):
            result, out, err = plan(*args)
            assert result["code"] == 1 and out == "" and err.startswith("error: ")
            assert (1, out, err) == full(*args)


def _beta_env(tmp_path: Path, wheelhouse: Path) -> tuple[Path, Path]:
    """A venv ``e`` and a manifest that adds beta to it from the wheelhouse."""
    env_dir = make_venv(tmp_path / "env")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"version: 1\ndefaults:\n  pip: {{no_index: true, find_links: [{wheelhouse}]}}\n"
        f"environments:\n  e:\n    prefix: {env_dir}\n    pip: [beta]\n"
    )
    return env_dir, manifest


def test_the_lifecycle_apply_is_answered_by_the_fast_path_and_its_child_remembers(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """The lifecycle script runs ``apply MANIFEST --background --wait S``; its detached
    child runs the apply. The child remembers a met manifest (as a plain apply does),
    and the next app start's ``--background`` call answers from the fast path: no child
    started, nothing planned or written."""
    env_dir, manifest = _beta_env(tmp_path, wheelhouse)
    state = tmp_path / "state"
    lifecycle = ["apply", manifest, "--background", "--wait", "60"]
    first, out, err = _run(isolated, state, *lifecycle)
    assert first["code"] == 0 and "install pip beta" in out, out + err
    logs = sorted((state / "logs").glob("background-*.log"))
    assert len(logs) == 1
    status = json.loads((state / "status.json").read_text())
    assert status["state"] == "finished", status
    _past_clock_slack()
    before = tree_hash(env_dir, state)
    again, out, err = _run(isolated, state, *lifecycle)
    assert again == {"code": 0, "planner": False, "yaml": False}, out + err
    assert out.strip() == "No changes: the environment already matches the manifest."
    assert sorted((state / "logs").glob("background-*.log")) == logs  # no child started
    assert tree_hash(env_dir, state) == before
    # What the full path prints for it: the child's output, the same line.
    full, full_out, _ = _run(isolated, state, *lifecycle, probe=FULL)
    assert (full["code"], full_out.strip().splitlines()[-1]) == (0, out.strip()), full_out
    # A plain apply and the background one share what was remembered.
    plain, out = _apply(isolated, state, manifest)
    assert plain == {"code": 0, "planner": False, "yaml": False}, out


def test_an_app_start_with_work_starts_the_detached_apply_without_planning_in_the_parent(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """The next start after an image reset (what was met once is missing again): the
    lifecycle's parent loads the manifest (from the validation memo: no YAML) and starts
    the detached apply without importing the planner, and the apply does what a
    plain one does. A manifest the machine now makes invalid is the parent's own error,
    before anything starts."""
    env_dir, manifest = _beta_env(tmp_path, wheelhouse)
    state = tmp_path / "state"
    lifecycle = ["apply", manifest, "--background", "--wait", "60"]
    shutil.copytree(env_dir, tmp_path / "image", symlinks=True)
    first, out, err = _run(isolated, state, *lifecycle)
    assert first["code"] == 0 and "install pip beta" in out, out + err
    site = next((env_dir / "lib").glob("python*/site-packages"))
    applied = sorted(p.name for p in site.iterdir())
    shutil.rmtree(env_dir)  # the app restarts: its image as it was before that apply
    shutil.copytree(tmp_path / "image", env_dir, symlinks=True)
    assert sorted(p.name for p in site.iterdir()) != applied
    again, out, err = _run(isolated, state, *lifecycle)
    assert again == {"code": 0, "planner": False, "yaml": False}, out + err
    assert "install pip beta" in out and not err, out + err
    assert sorted(p.name for p in site.iterdir()) == applied  # installed again
    assert len(list((state / "logs").glob("background-*.log"))) == 2
    status = json.loads((state / "status.json").read_text())
    assert status["state"] == "finished", status
    # The same bytes, but the prefix is a symbolic link now: invalid on this machine.
    env_dir.rename(tmp_path / "env-real")
    env_dir.symlink_to(tmp_path / "env-real")  # the same files: only the path differs
    before = tree_hash(tmp_path / "env-real", state)
    bad, out, err = _run(isolated, state, *lifecycle)
    assert (bad["code"], out) == (1, ""), out + err
    assert err.startswith(f"error: {manifest}:") and "symbolic link" in err, err
    assert tree_hash(tmp_path / "env-real", state) == before  # no child, no log, no status


def test_a_detached_apply_never_answers_from_the_fast_path(
    applied: tuple[Path, Path, Path, Path, dict[str, str]],
) -> None:
    """Its parent wrote the status file's "running" and answered a no-op itself: the
    child plans, and ends its status "finished"."""
    _image, _tools, manifest, state, env = applied
    result, out, err = _run(env, state, "apply", manifest, "--detached")
    assert result["code"] == 0 and result["planner"] is True, out + err
    assert json.loads((state / "status.json").read_text())["state"] == "finished"
    # Not the parent's shape, so not answered fast: the full path plans (--wait alone), or
    # starts the background apply (--background with --detached: the full path's reading).
    result, _, _ = _run(env, state, "apply", manifest, "--wait", "5")
    assert result["planner"] is True
    logs = list((state / "logs").glob("background-*.log"))
    result, out, _ = _run(env, state, "apply", manifest, "--background", "--detached")
    assert (
        result["code"] == 0
        and len(list((state / "logs").glob("background-*.log"))) == len(logs) + 1
    ), out


def test_a_state_dir_given_with_a_tilde_in_the_environment_is_the_home_one(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """``RECONCILER_STATE_DIR=~/st``: the fast path reads the state dir the full path
    writes (``~`` expanded), and makes no directory named ``~`` where it runs."""
    _env_dir, manifest = _beta_env(tmp_path, wheelhouse)
    work = tmp_path / "work"
    work.mkdir()
    env = {**isolated, "PYTHONPATH": str(REPO), "RECONCILER_STATE_DIR": "~/st"}
    results = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, "apply", str(manifest)],
            env=env, cwd=work, capture_output=True, text=True, check=False,
        )  # fmt: skip
        results.append(json.loads(proc.stdout.rstrip("\n").rpartition("\n")[2]))
        _past_clock_slack()
    assert [r["planner"] for r in results] == [True, False], results
    assert (Path(isolated["HOME"]) / "st" / CACHE).is_file()
    assert list(work.iterdir()) == []
