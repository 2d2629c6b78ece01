"""An apply works out its held-back notes while it installs (reconciler.plan.pip_side.LaterNotes).

``held back: newest is ...`` changes nothing an apply does, so ``apply`` leaves the
question of what is newest running beside the install and sets the notes on the plan
it shows at the end. The notes must be exactly the ones a plan gives. Real venvs, a
real wheelhouse and the real uv.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.plan.model import Change, EnvironmentPlan, HeldBack, Holder, Plan
from reconciler.plan.pip_side import LaterNotes
from tests.support.envs import make_venv, pip_install
from tests.support.manifests import SITE, run_cli, write_manifest
from tests.support.wheels import build_wheel

HELD = (
    "held back: newest is 23.1.0; black 23.1.0 requires packaging>=22.0; "
    "packaging is managed at 21.3"
)


@pytest.fixture
def black_house(tmp_path: Path) -> Path:
    """black 22.12.0 and 23.1.0 (which needs packaging>=22.0), packaging 21.3 and 22.0."""
    house = tmp_path / "wheels"
    house.mkdir()
    build_wheel(house, "packaging", "21.3")
    build_wheel(house, "packaging", "22.0")
    build_wheel(house, "black", "22.12.0", ["packaging>=20"])
    build_wheel(house, "black", "23.1.0", ["packaging>=22.0"])
    return house


def _setup(tmp_path: Path, house: Path, name: str) -> tuple[Path, Path, Path]:
    prefix = make_venv(tmp_path / name)
    pip_install(prefix, ["packaging==21.3"], house)
    manifest = write_manifest(
        tmp_path / f"{name}.yaml", {"e": {"prefix": prefix, "pip": ["black"]}}, wheelhouse=house
    )
    return prefix, manifest, tmp_path / f"state-{name}"


@pytest.mark.usefixtures("isolated")
def test_an_apply_says_what_holds_a_request_back_as_a_plan_does(
    tmp_path: Path, black_house: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix, manifest, state = _setup(tmp_path, black_house, "planned")
    code, planned, _ = run_cli(capsys, "--state-dir", state, "plan", "--json", manifest)
    assert code == 0, planned
    (change,) = json.loads(planned)["environments"][0]["changes"]
    assert change["held_back"] == {
        "newest": "23.1.0",
        "by": [
            {"name": "packaging", "version": "21.3", "requirement": "packaging>=22.0",
             "status": "managed"},
        ],
    }  # fmt: skip

    code, applied, err = run_cli(capsys, "--state-dir", state, "apply", "--json", manifest)
    assert code == 0, applied + err
    (done,) = json.loads(applied)["environments"][0]["changes"]
    assert {k: v for k, v in done.items() if k != "result"} == change
    assert done["result"] == "done"
    assert (prefix / SITE / "black-22.12.0.dist-info").is_dir()

    prefix, manifest, state = _setup(tmp_path, black_house, "shown")
    code, out, err = run_cli(capsys, "--state-dir", state, "apply", manifest)
    assert code == 0, out + err
    assert "+ install pip black 22.12.0 (requested)\n      " + HELD + "\n" in out, out


def _plan(*changes: Change) -> Plan:
    env = EnvironmentPlan(
        name="e", prefix="/p", kind="venv", exists=True, fingerprint="f", changes=changes
    )
    other = EnvironmentPlan(
        name="o", prefix="/o", kind="venv", exists=True, fingerprint="f", changes=changes
    )
    return Plan(manifest_path="/m.yaml", manifest_sha256="0" * 64, environments=(env, other))


@pytest.mark.usefixtures("isolated")
def test_an_apply_asks_what_is_newest_once_its_installer_has_started(
    tmp_path: Path,
    black_house: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An apply asks what is newest (a uv process) beside its install, from the
    installer's start on, not beside the checks the install waits for; its notes are
    the plan's."""
    from reconciler.backends import process
    from tests.support.servers import build_simple_index, serve

    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["packaging==21.3"], black_house)
    with serve(build_simple_index(black_house, tmp_path / "index")) as server:
        manifest = write_manifest(
            tmp_path / "m.yaml",
            {"e": {"prefix": prefix, "pip": ["black"]}},
            defaults={"pip": {"index_url": f"{server.url}simple/"}},
        )
        started: list[str] = []
        popen = process.subprocess.Popen

        def spawn(args: list[str], **kwargs: object) -> object:
            kind = "dry run" if "--dry-run" in args else args[2] if len(args) > 2 else "?"
            started.append(kind)
            return popen(args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr(process.subprocess, "Popen", spawn)
        code, out, err = run_cli(capsys, "--state-dir", tmp_path / "state", "apply", manifest)
    assert code == 0, out + err
    assert HELD in out
    assert started.index("install") < started.index("compile"), started


def test_the_notes_are_set_on_their_environments_changes_only() -> None:
    note = HeldBack("2.0", (Holder("dep", "1.0", "dep>=2", "managed"),))
    asked: list[str] = []
    later = LaterNotes()

    def notes() -> dict[str, HeldBack]:
        asked.append("/p")
        return {"a": note}

    later.add("/p", notes, lambda: None)
    changes = (
        Change("install", "pip", "a", None, "1.0", requested=True),
        Change("install", "pip", "b", None, "1.0", requested=False),
    )
    done = later.complete(_plan(*changes))
    assert asked == ["/p"]
    by_env = {e.name: e for e in done.environments}
    assert [c.held_back for c in by_env["e"].changes] == [note, None]
    assert [c.held_back for c in by_env["o"].changes] == [None, None]
    assert later.complete(_plan(*changes)) == _plan(*changes)  # asked once, then forgotten


def test_closing_waits_for_the_question_and_drops_its_notes() -> None:
    events: list[str] = []

    def notes() -> dict[str, HeldBack]:
        events.append("notes")  # would read metadata: not after a failure or a stop
        return {}

    def drop() -> None:
        events.append("waited")
        raise RuntimeError("the question failed")

    later = LaterNotes()
    later.add("/p", notes, drop)
    later.close()  # an apply that failed before its notes: nothing raised, nothing kept
    assert events == ["waited"]
    assert later.complete(_plan()) == _plan()


def test_after_a_stop_or_a_failing_note_the_apply_keeps_its_outcome() -> None:
    """A stop (SIGTERM) before the notes: none is worked out, each question is waited
    for. A note that fails (an index read stopped or failing): left out, no error."""
    events: list[str] = []

    def notes() -> dict[str, HeldBack]:
        events.append("notes")
        return {"a": HeldBack("2.0")}

    def failing() -> dict[str, HeldBack]:
        events.append("failing")
        raise RuntimeError("stopped by SIGTERM while reading the index")

    change = Change("install", "pip", "a", None, "1.0", requested=True)
    later = LaterNotes()
    later.add("/p", notes, lambda: events.append("waited /p"))
    later.add("/o", notes, lambda: events.append("waited /o"))
    assert later.complete(_plan(change), stopped=lambda: True) == _plan(change)
    assert events == ["waited /p", "waited /o"]

    events.clear()
    later.add("/p", failing, lambda: events.append("waited"))
    later.add("/o", notes, lambda: events.append("waited"))
    done = later.complete(_plan(change))
    assert events == ["failing", "notes"]
    assert [e.changes[0].held_back for e in done.environments] == [None, HeldBack("2.0")]
