"""What an interrupted ``add`` says it left (reconciler/apply/stopped.py).

Each state is made for real: a venv, packages installed into it with uv, the
environment's journal as an apply writes it. The kernel test
(tests/test_kernel_shim.py) interrupts a real ``add`` with the stop button.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.apply.journal import Journal
from reconciler.apply.stopped import Before, stopped_text
from reconciler.plan.model import Change
from reconciler.state.store import StateStore
from tests.support.envs import make_venv, pip_install

ADD_DELTA = (Change("install", "pip", "delta", None, "1.0", requested=True),)


def _setup(tmp_path: Path) -> tuple[Path, Path, Journal, Before]:
    prefix = make_venv(tmp_path / "env")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(f"version: 1\nenvironments:\n  nb:\n    prefix: {prefix}\n")
    state = StateStore(tmp_path / "state").env_dir(prefix)
    return prefix, manifest, Journal(state), Before.take(manifest, prefix, state)


def test_interrupted_before_the_apply_began(tmp_path: Path) -> None:
    prefix, manifest, journal, before = _setup(tmp_path)
    nothing = f"nothing was written to {manifest}; nothing was installed into {prefix}"
    assert stopped_text(before) == nothing
    # An earlier apply's entry is not this add's.
    journal.update(journal.begin(ADD_DELTA), status="done")
    assert stopped_text(Before.take(manifest, prefix, journal.path.parent)) == nothing


def test_interrupted_before_the_installer_changed_anything(tmp_path: Path) -> None:
    prefix, manifest, journal, before = _setup(tmp_path)
    journal.update(journal.begin(ADD_DELTA), step="pip", status="failed", error="killed")
    assert stopped_text(before) == (
        f"nothing was written to {manifest}; the install into {prefix} was stopped before it "
        f"changed a package: the environment is as it was (the journal {journal.path} "
        "records it as failed)"
    )


def test_interrupted_part_way_names_what_is_installed(tmp_path: Path, wheelhouse: Path) -> None:
    prefix, manifest, journal, before = _setup(tmp_path)
    changes = (*ADD_DELTA, Change("install", "pip", "beta", None, "1.0", requested=False))
    journal.update(journal.begin(changes), step="pip", status="failed", error="killed")
    pip_install(prefix, ["delta==1.0"], wheelhouse)
    assert stopped_text(before) == (
        f"nothing was written to {manifest}; the install into {prefix} was stopped part way "
        "(installed before it stopped: delta 1.0); `reconciler drift` shows the environment, "
        f"and the same add again finishes it (the journal {journal.path} records it as failed)"
    )


def test_interrupted_after_the_install_finished(tmp_path: Path, wheelhouse: Path) -> None:
    prefix, manifest, journal, before = _setup(tmp_path)
    journal.update(journal.begin(ADD_DELTA), status="done")
    pip_install(prefix, ["delta==1.0"], wheelhouse)
    assert stopped_text(before) == (
        f"nothing was written to {manifest}; the install into {prefix} had finished and was "
        "verified: the same add again writes it, installing nothing"
    )
    manifest.write_text(manifest.read_text() + "# the add wrote it\n")
    assert stopped_text(before) == (
        f"{manifest} was written; the install into {prefix} had finished and was verified"
    )


def test_an_interrupt_that_reaches_only_reconciler_stops_the_installer_too(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """Ctrl-C reaches the main thread; the install runs in another. Sent to reconciler
    alone (not its process group), the installer does not get it: the apply is asked to
    stop (as on SIGTERM), the installer is terminated after the grace period, and the
    add says what that left, instead of installing on while the interrupt waits."""
    import signal
    import subprocess
    import sysconfig
    import time

    from tests.support.servers import build_simple_index, serve

    prefix = make_venv(tmp_path / "env")
    manifest = tmp_path / "manifest.yaml"
    index = build_simple_index(wheelhouse, tmp_path / "index")
    cli = Path(sysconfig.get_path("scripts")) / "reconciler"
    with serve(index, delay=120.0) as server:  # the wheel download never ends in time
        text = (
            f"version: 1\ndefaults:\n  pip: {{index_url: '{server.url}simple/'}}\n"
            f"environments:\n  nb:\n    prefix: {prefix}\n    pip: []\n"
        )
        manifest.write_text(text)
        proc = subprocess.Popen(
            [cli, "--notebook", "add", manifest, "delta"],
            env=isolated, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for _ in range(1200):
            if any(r.path.endswith(".whl") and r.range is None for r in server.requests()):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    journal = StateStore(Path(isolated["RECONCILER_STATE_DIR"])).env_dir(prefix) / "journal.json"
    *_, failed, said = out.splitlines()
    assert proc.returncode == 130, out
    assert failed.startswith("[nb] failed: stopped by SIGINT: ") and failed.endswith(
        " was terminated after 7 s"
    ), out
    assert said == (
        f"interrupted: nothing was written to {manifest}; the install into {prefix} was "
        "stopped before it changed a package: the environment is as it was (the journal "
        f"{journal} records it as interrupted)"
    ), out
    assert manifest.read_text() == text
