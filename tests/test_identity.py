"""A rebuilt venv is a new image (issue 9 item 4); a restarted one is not.

Recreating a venv at the same path writes a byte-identical ``pyvenv.cfg``: the
identity also covers its mtime (whole seconds), which an image layer keeps across
container restarts (simulated by copying the prefix away and back with its
mtimes: new inodes, same contents and times).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.state.environment import image_identity
from reconciler.state.store import StateStore
from tests.support.envs import isolated_env
from tests.support.manifests import run_cli, write_manifest


def _changed_notice(prefix: Path) -> str:
    return f"the image under {prefix} changed since the baseline of "


def next_second() -> None:
    """Sleep past the current whole second (the identity keeps whole-second mtimes)."""
    time.sleep(1.05 - time.time() % 1)


def _venv(prefix: Path, *flags: str) -> Path:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", *flags, str(prefix)],
        check=True,
        env=isolated_env(),
    )
    return prefix


def _setup(
    tmp_path: Path, wheelhouse: Path, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[Path, Path, Path]:
    prefix = _venv(tmp_path / "env", *flags)
    state = tmp_path / "state"
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"main": {"prefix": prefix, "pip": ["alpha==1.0"]}},
        wheelhouse=wheelhouse,
    )
    code, out, err = run_cli(capsys, "--state-dir", state, "apply", manifest)
    assert code == 0, out + err
    return prefix, state, manifest


@pytest.mark.parametrize("how", ["again", "clear", "rm-rf"])
def test_a_recreated_venv_is_an_image_change(
    tmp_path: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    wheelhouse: Path,
    how: str,
) -> None:
    # The same command each time, so that pyvenv.cfg (its `command =` line) is identical.
    flags = ("--clear",) if how == "clear" else ()
    prefix, state, manifest = _setup(tmp_path, wheelhouse, capsys, *flags)
    cfg = (prefix / "pyvenv.cfg").read_bytes()
    next_second()
    if how == "rm-rf":
        shutil.rmtree(prefix)
    _venv(prefix, *flags)
    assert (prefix / "pyvenv.cfg").read_bytes() == cfg  # the old identity could not see it

    code, out, err = run_cli(capsys, "--state-dir", state, "plan", "--json", manifest)
    assert code == 2 or code == 0, out + err
    notices = json.loads(out)["environments"][0].get("notices", [])
    assert any(n.startswith(_changed_notice(prefix)) for n in notices), out + err
    # The new image's packages are the managed set; owned records are dropped.
    changes = json.loads(out)["environments"][0]["changes"]
    if how == "again":  # the old venv's alpha 1.0 stays: now part of the image
        assert changes == []
    else:
        assert [(c["action"], c["name"], c["refused"]) for c in changes] == [
            ("install", "alpha", False)
        ]


def test_a_restarted_container_keeps_the_image(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str], wheelhouse: Path
) -> None:
    prefix, state, manifest = _setup(tmp_path, wheelhouse, capsys)
    before = image_identity(prefix)
    next_second()
    # A fresh extraction of the same layer: new inodes and ctimes, same bytes and mtimes.
    moved = tmp_path / "layer-copy"
    shutil.copytree(prefix, moved, symlinks=True, copy_function=shutil.copy2)
    shutil.rmtree(prefix)
    shutil.copytree(moved, prefix, symlinks=True, copy_function=shutil.copy2)
    assert image_identity(prefix) == before

    code, out, err = run_cli(capsys, "--state-dir", state, "plan", "--json", manifest)
    assert code == 0, out + err
    env = json.loads(out)["environments"][0]
    assert not any(n.startswith(_changed_notice(prefix)) for n in env.get("notices", []))
    assert env["changes"] == []


def test_an_old_content_only_identity_is_migrated_not_read_as_a_change(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str], wheelhouse: Path
) -> None:
    import hashlib

    prefix, state, manifest = _setup(tmp_path, wheelhouse, capsys)
    path = StateStore(state).env_dir(prefix) / "baseline.json"
    data = json.loads(path.read_text())
    legacy = "pyvenv:" + hashlib.sha256((prefix / "pyvenv.cfg").read_bytes()).hexdigest()[:32]
    data["image"] = legacy  # what baselines recorded before
    path.write_text(json.dumps(data))

    code, out, err = run_cli(capsys, "--state-dir", state, "plan", "--json", manifest)
    assert code == 0, out + err
    env = json.loads(out)["environments"][0]
    assert not any(n.startswith(_changed_notice(prefix)) for n in env.get("notices", []))
    assert json.loads(path.read_text())["image"] == image_identity(prefix) != legacy

    next_second()
    shutil.rmtree(prefix)
    _venv(prefix)
    _, out, _ = run_cli(capsys, "--state-dir", state, "plan", "--json", manifest)
    env = json.loads(out)["environments"][0]
    assert any(n.startswith(_changed_notice(prefix)) for n in env.get("notices", []))
