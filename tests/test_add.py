"""``reconciler add``, ``remove`` and ``adopt`` on real environments (issue 12).

Real venvs (and a hybrid conda prefix from the test channel), real uv / pip /
py-rattler installs, the CLI in-process (``reconciler.cli.main``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reconciler.manifest import load_manifest
from tests.support.envs import make_conda_prefix, make_venv, pip_install, tree_hash
from tests.support.manifests import SITE, run_cli

MANIFEST = """\
# Team manifest: a comment that add must keep.
version: 1

defaults:
  pip: {{no_index: true, find_links: ["{wheelhouse}"]}}
  installer: {installer}

environments:
  work:
    prefix: {prefix}   # the kernel's venv
    pip:
      - 'delta==1.0'
      - "epsilon-pkg"
"""


def _setup(
    tmp_path: Path, wheelhouse: Path, *, installer: str = "uv", image: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    venv = make_venv(tmp_path / "venv")
    if image:
        pip_install(venv, list(image), wheelhouse)
    manifest = tmp_path / "team.yaml"
    manifest.write_text(
        MANIFEST.format(wheelhouse=wheelhouse, prefix=venv, installer=installer), encoding="utf-8"
    )
    return venv, manifest


def _dists(venv: Path) -> list[str]:
    return sorted(p.name for p in (venv / SITE).glob("*.dist-info"))


def test_add_installs_then_writes_keeping_comments_order_and_quotes(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    venv, manifest = _setup(tmp_path, wheelhouse)
    original = manifest.read_text(encoding="utf-8")

    code, out, err = run_cli(capsys, "add", manifest, "alpha", "beta==1.0", "delta>=1.1")

    assert (code, err) == (0, ""), out
    assert out.endswith(
        f"Added to environments.work.pip in {manifest} and installed: "
        "delta>=1.1, alpha>=2.0, beta==1.0\n  replaced: 'delta==1.0'\n"
    ) or out.endswith(
        f"Added to environments.work.pip in {manifest} and installed: "
        "alpha>=2.0, beta==1.0, delta>=1.1\n  replaced: delta==1.0\n"
    ), out
    # The bare name got the installed version as its lower bound; the others as given;
    # delta's entry replaced in place (its quotes kept), new ones quoted like the last.
    assert manifest.read_text(encoding="utf-8") == original.replace(
        "      - 'delta==1.0'\n", "      - 'delta>=1.1'\n"
    ).replace(
        '      - "epsilon-pkg"\n',
        '      - "epsilon-pkg"\n      - "alpha>=2.0"\n      - "beta==1.0"\n',
    )
    assert _dists(venv) == [
        "Epsilon_Pkg-1.0.dist-info",
        "alpha-2.0.dist-info",
        "beta-1.0.dist-info",
        "delta-1.1.dist-info",
    ]
    code, out, _ = run_cli(capsys, "apply", manifest)
    assert (code, out) == (0, "No changes: the environment already matches the manifest.\n")


def test_refused_add_leaves_the_manifest_byte_identical_and_installs_nothing(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    venv, manifest = _setup(tmp_path, wheelhouse, image=("alpha==1.0",))
    before_bytes, before_tree = manifest.read_bytes(), tree_hash(venv)

    code, out, err = run_cli(capsys, "add", manifest, "beta==2.0")

    assert (code, err) == (3, "")
    assert "      refused: beta 2.0 requires alpha>=2; alpha is managed at 1.0\n" in out
    assert out.endswith(
        "Not added: the plan refuses a change (above), so nothing was installed and "
        f"{manifest} is unchanged.\n"
        "  what to do: choose a version that the managed packages allow (the refusal quotes "
        "the requirement), or add the package to an environment of its own.\n"
    )
    assert manifest.read_bytes() == before_bytes
    assert tree_hash(venv) == before_tree


def test_add_no_apply_writes_after_the_plan_and_installs_nothing(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    venv, manifest = _setup(tmp_path, wheelhouse)
    before_tree = tree_hash(venv)

    code, out, err = run_cli(capsys, "add", manifest, "--no-apply", "gamma")

    assert (code, err) == (0, "")
    assert out.endswith(
        f"Added to environments.work.pip in {manifest}: gamma>=1.0\n"
        f"  not installed (--no-apply): `reconciler apply {manifest}` installs it\n"
    )
    assert '      - "gamma>=1.0"\n' in manifest.read_text(encoding="utf-8")
    assert tree_hash(venv) == before_tree


def test_add_with_installer_pip_under_force_color_plans_and_installs(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ipykernel sets these for the kernel process; pip's --report JSON came back coloured.
    for key in ("FORCE_COLOR", "CLICOLOR_FORCE", "CLICOLOR"):
        monkeypatch.setenv(key, "1")
    venv = make_venv(tmp_path / "venv", with_pip=True)
    manifest = tmp_path / "team.yaml"
    manifest.write_text(
        MANIFEST.format(wheelhouse=wheelhouse, prefix=venv, installer="pip"), encoding="utf-8"
    )
    code, out, err = run_cli(capsys, "add", manifest, "alpha==1.0")
    assert (code, err) == (0, ""), out
    assert "alpha-1.0.dist-info" in _dists(venv)


def test_env_is_required_when_it_cannot_be_chosen(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.edit import choose_environment

    _venv, manifest = _setup(tmp_path, wheelhouse)
    other = make_venv(tmp_path / "other")
    text = manifest.read_text(encoding="utf-8") + f"  other:\n    prefix: {other}\n"
    manifest.write_text(text, encoding="utf-8")
    before = manifest.read_bytes()

    code, out, err = run_cli(capsys, "add", manifest, "alpha")
    assert (code, out) == (1, "")
    assert err == (
        f"error: {manifest} has 2 environments and none is the running interpreter's "
        f"({sys.prefix}); choose one with --env NAME\n  hint: environments: work, other\n"
    )
    code, out, err = run_cli(capsys, "remove", manifest, "--env", "nope", "delta")
    assert (code, err) == (1, f"error: no environment named 'nope' in {manifest}\n"
                              "  hint: environments: work, other\n")  # fmt: skip
    assert manifest.read_bytes() == before
    # One environment whose prefix is this interpreter's: it is the default.
    here = text + f"  here:\n    prefix: {sys.prefix}\n"
    manifest.write_text(here, encoding="utf-8")
    assert choose_environment(load_manifest(manifest), None).name == "here"


def test_remove_drops_entries_installs_nothing_and_drift_shows_orphaned(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    venv, manifest = _setup(tmp_path, wheelhouse)
    assert run_cli(capsys, "apply", manifest)[0] == 0
    original = manifest.read_text(encoding="utf-8")
    before_tree = tree_hash(venv)

    code, out, err = run_cli(capsys, "remove", manifest, "Epsilon_Pkg")

    assert (code, err) == (0, "")
    assert out == (
        f"Removed from environments.work in {manifest}: Epsilon_Pkg\n"
        "  nothing was uninstalled: reconciler never uninstalls\n"
        "  `reconciler drift` now shows Epsilon_Pkg as orphaned (installed by reconciler, "
        "no longer declared)\n"
    )
    assert manifest.read_text(encoding="utf-8") == original.replace('      - "epsilon-pkg"\n', "")
    assert tree_hash(venv) == before_tree
    code, out, _ = run_cli(capsys, "drift", manifest)
    assert "  info: orphaned pip epsilon-pkg 1.0: installed by reconciler, no longer in " in out

    before = manifest.read_bytes()
    code, out, err = run_cli(capsys, "remove", manifest, "alpha")
    assert (code, out) == (1, "")
    assert err == (
        f"error: alpha: not declared in environments.work of {manifest}; nothing was changed\n"
        "  hint: `reconciler plan MANIFEST` lists what each environment declares\n"
    )
    assert manifest.read_bytes() == before


def test_adopt_writes_top_level_foreign_packages_and_drift_then_finds_none(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    venv, manifest = _setup(tmp_path, wheelhouse, image=("alpha==1.0",))
    assert run_cli(capsys, "apply", manifest)[0] == 0  # baseline: alpha 1.0
    # By hand, after the baseline: needs-torchy pulls torchy; beta needs alpha (managed).
    pip_install(venv, ["needs-torchy==1.0", "beta==1.0"], wheelhouse)
    original = manifest.read_bytes()

    code, out, err = run_cli(capsys, "adopt", manifest, "--dry-run")

    assert (code, err) == (0, "")
    assert out == (
        f"--- {manifest}\n+++ {manifest}\n@@ -11,3 +11,5 @@\n"
        "     pip:\n"
        "       - 'delta==1.0'\n"
        '       - "epsilon-pkg"\n'
        '+      - "beta==1.0"\n'
        '+      - "needs-torchy==1.0"\n'
        "Would adopt into environments.work: beta==1.0, needs-torchy==1.0 (dry run)\n"
        "  not written, required by an adopted package: torchy\n"
    )
    assert manifest.read_bytes() == original

    code, out, err = run_cli(capsys, "adopt", manifest)
    assert (code, err) == (0, "")
    assert out == (
        f"Adopted into environments.work in {manifest}: beta==1.0, needs-torchy==1.0\n"
        "  not written, required by an adopted package: torchy\n"
    )
    code, out, _ = run_cli(capsys, "drift", manifest, "--json")
    import json

    findings = json.loads(out)["environments"][0]["findings"]
    assert [f for f in findings if f["kind"] == "foreign"] == []
    code, out, _ = run_cli(capsys, "adopt", manifest)
    assert out == "Nothing to adopt: work has no package installed by hand (foreign)\n"

    # A reset image (same prefix, only the image's packages): apply puts them back.
    import shutil

    shutil.rmtree(venv)
    make_venv(venv)
    pip_install(venv, ["alpha==1.0"], wheelhouse)
    code, out, err = run_cli(capsys, "apply", manifest)
    assert code == 0, out + err
    assert {"beta-1.0.dist-info", "needs_torchy-1.0.dist-info", "torchy-2.0.dist-info"} <= set(
        _dists(venv)
    )


def test_add_conda_writes_the_conda_list(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["libfoo ==1.0"], hybrid=True)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\n"
        f"defaults:\n  channels: [{channel.resolve().as_uri()}]\n"
        f"  pip: {{no_index: true, find_links: [{wheelhouse}]}}\n"
        f"environments:\n  c:\n    prefix: {prefix}\n    pip: [delta]  # keep\n",
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "add", manifest, "--conda", "condaonly", "--no-apply")
    assert (code, err) == (0, ""), out
    assert manifest.read_text(encoding="utf-8").endswith(
        f'    prefix: {prefix}\n    conda: ["condaonly>=1.1"]\n    pip: [delta]  # keep\n'
    )
    code, out, err = run_cli(capsys, "add", manifest, "--conda", "condaonly==1.0")
    assert (code, err) == (0, ""), out
    assert 'conda: ["condaonly==1.0"]' in manifest.read_text(encoding="utf-8")
    assert sorted(p.name for p in (prefix / "conda-meta").glob("condaonly-*.json")) == [
        "condaonly-1.0-0.json"
    ]


def test_a_package_in_all_is_left_to_all(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _venv, manifest = _setup(tmp_path, wheelhouse)
    text = manifest.read_text(encoding="utf-8").replace(
        "\nenvironments:\n", "\nall:\n  pip: ['alpha>=1']\n\nenvironments:\n"
    )
    manifest.write_text(text, encoding="utf-8")

    code, out, err = run_cli(capsys, "remove", manifest, "alpha")
    assert (code, out) == (1, "")
    assert err == (
        "error: alpha is declared in all: (every environment), not in environments.work; "
        f"nothing was changed\n  hint: remove it from all: in {manifest} by hand if no "
        "environment needs it\n"
    )
    assert manifest.read_text(encoding="utf-8") == text

    code, out, err = run_cli(capsys, "add", manifest, "--no-apply", "alpha<2")
    assert (code, err) == (0, ""), out
    assert out.endswith(
        f"Added to environments.work.pip in {manifest}: alpha<2\n"
        "  note: all.pip also declares alpha; both specs apply\n"
        f"  not installed (--no-apply): `reconciler apply {manifest}` installs it\n"
    )
    after = manifest.read_text(encoding="utf-8")
    assert "  pip: ['alpha>=1']\n" in after and '      - "alpha<2"\n' in after


def test_adopt_writes_conda_packages_to_the_conda_list(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.support.envs import conda_install_more

    prefix = make_conda_prefix(tmp_path / "env", channel, ["libfoo ==1.0"], hybrid=True)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\ndefaults:\n  channels: [{channel.resolve().as_uri()}]\n"
        f"  pip: {{no_index: true, find_links: [{wheelhouse}]}}\n"
        f"environments:\n  c:\n    prefix: {prefix}\n    pip: [delta]\n",
        encoding="utf-8",
    )
    assert run_cli(capsys, "baseline", "capture", manifest)[0] == 0
    # By hand: a conda package that ships a Python distribution, and a plain one.
    conda_install_more(prefix, channel, ["pyfoo ==1.0", "condaonly"])

    code, out, err = run_cli(capsys, "adopt", manifest)

    assert (code, err) == (0, "")
    assert out == f"Adopted into environments.c in {manifest}: condaonly==1.1, pyfoo==1.0\n"
    assert manifest.read_text(encoding="utf-8").endswith(
        f'    prefix: {prefix}\n    conda: ["condaonly==1.1", "pyfoo==1.0"]\n    pip: [delta]\n'
    )
    code, out, _ = run_cli(capsys, "drift", manifest)
    assert "foreign" not in out
