"""The pip install of an apply is the exact set its preview resolved (issue 13).

The plan's preview already resolved what to install with every managed and
foreign package pinned; the install then runs with ``--no-deps`` and those
``name==version`` pins, so the installer neither resolves again nor installs
anything the plan does not show. A saved plan (``apply --plan``), whose changes
anyone could have edited, keeps the resolving install of the requirements the
manifest declares, pinned by the file's versions.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from reconciler.backends.pip_args import pins_for
from reconciler.state.environment import read_state
from tests.support.envs import make_venv, pip_install
from tests.support.manifests import run_cli, write_manifest


def _install_commands(state: Path) -> list[list[str]]:
    """The installer commands of the apply logs (``[env] $ ...`` lines), parsed."""
    commands = []
    for log in sorted((state / "logs").glob("apply-*.log")):
        for line in log.read_text(encoding="utf-8").splitlines():
            _, _, command = line.partition("] $ ")
            if command and " install " in command:
                commands.append(shlex.split(command))
    return commands


def _requirements(argv: list[str]) -> list[str]:
    return argv[argv.index("--") + 1 :]


def _apply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, venv: Path, pip: list[str],
    wheelhouse: Path, installer: str,
) -> list[str]:  # fmt: skip
    """Apply a manifest of ``venv`` with ``pip`` through ``installer``; its one install's
    command line."""
    manifest = write_manifest(
        tmp_path / "m.yaml", {"main": {"prefix": venv, "pip": pip}}, wheelhouse=wheelhouse
    )
    document = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    document["defaults"]["installer"] = installer
    manifest.write_text(yaml.safe_dump(document), encoding="utf-8")
    state = tmp_path / "state"

    code, out, err = run_cli(capsys, "--state-dir", state, "apply", manifest)

    assert (code, err) == (0, ""), out + err
    [argv] = _install_commands(state)
    return argv


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_the_install_is_the_previewed_set_pinned_without_resolving(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    installer: str,
) -> None:
    venv = make_venv(tmp_path / "venv", with_pip=installer == "pip")
    argv = _apply(capsys, tmp_path, venv, ["gamma"], wheelhouse, installer)
    assert "--no-deps" in argv
    # gamma 1.0 requires beta>=2, which requires alpha>=2: the plan's three installs.
    assert sorted(_requirements(argv)) == ["alpha==2.0", "beta==2.0", "gamma==1.0"]
    dists = read_state(venv).dists
    assert {n: dists[n].version for n in ("alpha", "beta", "gamma")} == {
        "alpha": "2.0",
        "beta": "2.0",
        "gamma": "1.0",
    }


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_the_exact_install_is_given_the_pins_of_what_it_installs_only(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    installer: str,
) -> None:
    """The preview resolved under every pin; the install without dependencies can only
    install what it is given, so the pin of the managed delta (and pip's own, with the
    pip installer) is not in its command: no constraints file at all here."""
    venv = make_venv(tmp_path / "venv", with_pip=installer == "pip")
    pip_install(venv, ["delta==1.0"], wheelhouse, env=isolated)  # the image's: managed
    argv = _apply(capsys, tmp_path, venv, ["delta", "gamma"], wheelhouse, installer)
    assert "--no-deps" in argv
    assert sorted(_requirements(argv)) == ["alpha==2.0", "beta==2.0", "gamma==1.0"]
    assert not {"--constraints", "--constraint"} & set(argv), argv
    assert read_state(venv).dists["delta"].version == "1.0"


def test_the_pins_an_install_without_dependencies_is_given() -> None:
    """Those of the distributions it installs, by canonical name; a managed one among
    them keeps its pin, which then fails the install before anything changes."""
    pins = ["Delta==1.0", "numpy==1.26.4", "ruamel.yaml==0.18.6", "zeta===2024a"]
    assert pins_for(pins, ["alpha==2.0", "gamma==1.0"]) == []
    assert pins_for(pins, ["delta==1.1", "gamma==1.0"]) == ["Delta==1.0"]
    assert pins_for(pins, ["ruamel-yaml==0.18.7 --hash=sha256:00", "Zeta==2025a"]) == [
        "ruamel.yaml==0.18.6",
        "zeta===2024a",
    ]


def test_a_saved_plan_installs_the_declared_requirements_by_resolving(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    venv = make_venv(tmp_path / "venv")
    manifest = write_manifest(
        tmp_path / "m.yaml", {"main": {"prefix": venv, "pip": ["gamma"]}}, wheelhouse=wheelhouse
    )
    state, saved = tmp_path / "state", tmp_path / "plan.json"
    assert run_cli(capsys, "--state-dir", state, "plan", manifest, "--out", saved)[0] == 0

    code, out, err = run_cli(capsys, "--state-dir", state, "apply", "--plan", saved)

    assert (code, err) == (0, ""), out + err
    [argv] = _install_commands(state)
    assert "--no-deps" not in argv
    assert _requirements(argv) == ["gamma"]
    assert read_state(venv).dists["gamma"].version == "1.0"
