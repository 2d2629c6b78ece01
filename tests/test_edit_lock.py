"""Two ``reconciler add``s on one manifest at once take turns (the edit lock, issue 12).

Real processes: this test's own ``reconciler`` console script, twice, on a real venv
and a local wheelhouse. The test holds the manifest's edit lock first, so both
adds are started while it is busy: each says it waits, then they take turns, and
the second plans (and writes) against the manifest the first wrote.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

from reconciler.edit_lock import edit_lock_path, hold_edit_lock
from reconciler.errors import LockError
from tests.test_add import _dists, _setup

CLI = Path(sysconfig.get_path("scripts")) / "reconciler"


def _wait_for(path: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, f"{path}: {path.read_text(encoding='utf-8')!r}"
        time.sleep(0.05)


def test_two_adds_at_once_take_turns_and_the_second_plans_the_firsts_result(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    venv, manifest = _setup(tmp_path, wheelhouse)
    original = manifest.read_text(encoding="utf-8")
    state = Path(isolated["RECONCILER_STATE_DIR"])
    specs = ("alpha", "beta==1.0")
    errs = [tmp_path / f"err-{n}.txt" for n in range(2)]
    waiting = f"waiting for another add, remove or adopt of {manifest} (pid {os.getpid()})\n"
    with hold_edit_lock(state, manifest, 5.0, lambda holder: None):
        procs = [
            subprocess.Popen([str(CLI), "add", str(manifest), spec], env=isolated,
                             stdout=subprocess.PIPE, stderr=err.open("w"), text=True)
            for spec, err in zip(specs, errs)
        ]  # fmt: skip
        for err in errs:
            _wait_for(err, waiting)  # both started while the manifest was being edited
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [e.read_text(encoding="utf-8") for e in errs] == [waiting, waiting]
    # Whichever went second read the first's result (else its write would have been
    # refused: the file changed since it was read): both entries are in the file.
    alpha, beta = '      - "alpha>=2.0"\n', '      - "beta==1.0"\n'
    after = '      - "epsilon-pkg"\n'
    assert manifest.read_text(encoding="utf-8") in {
        original.replace(after, after + alpha + beta),
        original.replace(after, after + beta + alpha),
    }
    for out, spec in zip(outs, ("alpha>=2.0", "beta==1.0")):
        assert f"Added to environments.work.pip in {manifest} and installed: {spec}\n" in out
    assert "alpha-2.0.dist-info" in _dists(venv) and "beta-1.0.dist-info" in _dists(venv)
    assert not edit_lock_path(state, manifest).exists()  # removed on release


def test_an_edit_lock_held_too_long_is_an_error_that_changes_nothing(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    venv, manifest = _setup(tmp_path, wheelhouse)
    before, dists = manifest.read_bytes(), _dists(venv)
    state = Path(isolated["RECONCILER_STATE_DIR"])
    with hold_edit_lock(state, manifest, 5.0, lambda holder: None):
        proc = subprocess.run(
            [str(CLI), "remove", str(manifest), "epsilon-pkg", "--lock-timeout", "0.5"],
            env=isolated, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        busy = hold_edit_lock(state, manifest, 0.0, lambda holder: None)
        with pytest.raises(LockError) as caught, busy:  # busy even for this process (flock)
            pass
    assert str(caught.value).startswith(f"{manifest} is being changed by another add")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"waiting for another add, remove or adopt of {manifest} (pid {os.getpid()})\n"
        f"error: {manifest} is being changed by another add, remove or adopt "
        f"(pid {os.getpid()}); gave up after 0.5 s; nothing was changed\n"
        "  hint: wait for it to finish, then run this again (or raise --lock-timeout)\n"
    )
    assert (manifest.read_bytes(), _dists(venv)) == (before, dists)
