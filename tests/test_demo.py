"""``reconciler demo``: the README's first command, run as a real process in a temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RECONCILER = str(Path(sys.executable).parent / "reconciler")


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECONCILER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_demo_builds_plans_and_says_what_to_try_next(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    env = {k: v for k, v in isolated.items() if k != "RECONCILER_STATE_DIR"}
    proc = _run(tmp_path, env, "demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    demo = tmp_path / ".demo"
    state = demo / "state"
    out = proc.stdout
    lines = out.splitlines()
    assert lines[0].startswith("Building the demo under .demo: a wheelhouse and a conda channel")
    assert lines[1:4] == [
        "Captured the image's baseline: its packages are now managed.",
        "",
        f"$ {RECONCILER} plan .demo/manifest.yaml",
    ]
    assert f"image ({demo}/image, conda):" in lines
    assert "  + install conda condaonly 1.1 (requested)" in lines
    assert "      refused: gamma 1.0 requires beta>=2; beta is managed at 1.0" in lines
    assert (
        "(exit code 3: a change to a managed package is refused, so apply would change nothing)"
    ) in lines
    assert f"  export RECONCILER_STATE_DIR={state}" in lines
    assert (
        f"  {RECONCILER} drift .demo/manifest.yaml             # how the environments differ" in out
    )
    assert lines[-1] == f"  {RECONCILER} apply .demo/manifest.yaml"
    assert (state / "envs").is_dir()
    assert not (Path(env["HOME"]) / ".local" / "state" / "reconciler").exists()

    # What it says to try works: drift, then apply without gamma.
    env["RECONCILER_STATE_DIR"] = str(state)
    assert _run(tmp_path, env, "drift", ".demo/manifest.yaml").returncode == 0
    manifest = demo / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace('["beta>=1", gamma]', '["beta>=1"]'))
    applied = _run(tmp_path, env, "apply", ".demo/manifest.yaml", "--env", "image")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Applied 1 environment; log: " in applied.stdout
    assert list((demo / "image").glob("lib/python*/site-packages/delta-1.1.dist-info"))

    # Again: the demo replaces its own directory.
    assert _run(tmp_path, env, "demo").returncode == 0
    assert not list((demo / "image").glob("lib/python*/site-packages/delta-1.1.dist-info"))


def test_demo_never_replaces_a_directory_it_did_not_build(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    proc = _run(tmp_path, isolated, "demo", "work")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        f"error: {precious} exists and is not a demo directory; nothing was changed"
    )
    assert os.listdir(precious) == ["notes.txt"]
