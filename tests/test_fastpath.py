"""The no-op fast path of ``reconciler apply`` (reconciler/fastpath.py, reconciler/entry.py).

It must answer a repeated no-op without loading the planner, and must never
answer "nothing to do" once anything the plan depends on changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.envs import make_conda_prefix, make_venv, pip_install, tree_hash

REPO = Path(__file__).resolve().parents[1]
PROBE = (
    "import sys, json; from reconciler.entry import main; code = main(sys.argv[1:]); "
    "print(json.dumps({'code': code, 'planner': 'reconciler.plan.planner' in sys.modules, "
    "'yaml': 'yaml' in sys.modules}))"
)


def _apply(env: dict[str, str], state: Path, manifest: Path) -> tuple[dict[str, object], str]:
    """Run apply in a fresh interpreter; report whether the planner was imported."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "--state-dir", str(state), "apply", str(manifest)],
        env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    result: dict[str, object] = json.loads(lines[-1])
    return result, "\n".join(lines[:-1]) + proc.stderr


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


def test_a_hand_change_takes_the_full_path(
    applied: tuple[Path, Path, Path, Path, dict[str, str]], wheelhouse: Path
) -> None:
    _image, tools, manifest, state, env = applied
    pip_install(tools, ["delta==1.0"], wheelhouse)  # a foreign package appears
    result, out = _apply(env, state, manifest)
    assert result["planner"] is True and result["code"] == 0, out
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


def test_other_shapes_of_apply_always_plan(
    applied: tuple[Path, Path, Path, Path, dict[str, str]],
) -> None:
    _image, _tools, manifest, state, env = applied
    for extra in (["--json"], ["--partial"], ["--env", "image", "--json"]):
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, "--state-dir", str(state), "apply", str(manifest),
             *extra],
            env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert json.loads(proc.stdout.strip().splitlines()[-1])["planner"] is True, extra
