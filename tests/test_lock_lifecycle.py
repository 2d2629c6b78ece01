"""The lifecycle script with a lock file (issue 11): embedded beside the manifest, --locked.

The full start runs the generated script with bash in a simulated Studio home, as
:mod:`tests.test_lifecycle` does (reconciler installed offline from a wheelhouse).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.envs import make_conda_prefix
from tests.support.manifests import run_cli
from tests.test_lifecycle import _generate, _start, studio_wheelhouse  # noqa: F401 (fixture)

BODY = """\
version: 1
defaults:
  pip: {{no_index: true, find_links: [{wheels}]}}
environments:
  base:
    prefix: {image}
    pip: [beta]
"""


def _head(script: str, home: Path) -> None:
    """Run the script up to the apply: it writes the manifest and the lock file."""
    head = script.split('log "start')[0]
    subprocess.run(["bash", "-c", head], env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                   check=True, capture_output=True)  # fmt: skip


def test_the_lock_is_embedded_beside_the_manifest_and_locked_is_passed(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str], wheelhouse: Path
) -> None:
    from tests.support.envs import make_venv

    image = make_venv(tmp_path / "image")
    manifest = tmp_path / "team.yaml"
    manifest.write_text(BODY.format(wheels=wheelhouse, image=image), encoding="utf-8")
    code, _, err = run_cli(capsys, "lifecycle", manifest, "--locked")
    assert code == 1
    assert err == (
        "error: --locked: there is no lock file team.lock beside team.yaml\n"
        "  hint: run `reconciler lock team.yaml` first\n"
    )
    assert run_cli(capsys, "lock", manifest)[0] == 0
    script = _generate(manifest, capsys, "--locked")
    home = tmp_path / "home"
    home.mkdir()
    _head(script, home)
    assert (home / ".reconciler" / "manifest.yaml").read_bytes() == manifest.read_bytes()
    assert (home / ".reconciler" / "manifest.lock").read_bytes() == (
        tmp_path / "team.lock"
    ).read_bytes()
    apply = next(line for line in script.splitlines() if '/bin/reconciler" apply' in line)
    assert apply.endswith('--background --wait "$remaining" --locked 2>&1 \\')
    plain = _generate(manifest, capsys)
    assert "--locked" not in plain and "manifest.lock" in plain
    by_path = _generate(manifest, capsys, "--manifest-path", "~/team.yaml", "--locked")
    assert "manifest.lock" not in by_path and "--locked" in by_path  # read from the volume


def test_a_studio_start_applies_the_lock(
    tmp_path: Path,
    isolated: dict[str, str],
    channel: Path,
    studio_wheelhouse: Path,  # noqa: F811 (the fixture)
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = make_conda_prefix(tmp_path / "opt-conda", channel, ["pyfoo ==1.0"], hybrid=True)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(BODY.format(wheels=studio_wheelhouse, image=image), encoding="utf-8")
    assert run_cli(capsys, "lock", manifest)[0] == 0
    script = tmp_path / "on-start.sh"
    script.write_text(
        _generate(
            manifest, capsys, "--wheel", str(studio_wheelhouse), "--python", sys.executable,
            "--budget", "200", "--locked",
        )
    )  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in isolated.items() if k != "RECONCILER_STATE_DIR"}
    env["HOME"] = str(home)
    _, out = _start(script, env)
    assert f"base ({image}, conda) (from manifest.lock):" in out
    assert "Applied 1 environment; log: " in out
    site = next((image / "lib").glob("python*/site-packages"))
    assert sorted(p.name for p in site.glob("*.dist-info") if p.name[0] in "ab") == [
        "alpha-2.0.dist-info",
        "beta-2.0.dist-info",
    ]


def test_a_lock_too_big_to_embed_is_refused_and_read_from_the_volume_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "team.yaml"
    manifest.write_text(BODY.format(wheels=tmp_path, image=tmp_path), encoding="utf-8")
    wheels = [
        {"filename": f"pkg{i}-1.0-py3-none-any.whl", "name": f"pkg{i}", "sha256": f"{i:064x}",
         "source": "https://pypi.org/simple/", "version": "1.0"}
        for i in range(120)
    ]  # fmt: skip
    entries = {"channels": [], "conda": [], "find_links": [], "indexes": [], "pip": ["beta"]}
    env = {"conda": [], "entries": entries, "image": "pyvenv:x", "managed_sha256": "c" * 64,
           "pip": wheels}  # fmt: skip
    doc = {"environments": {"base": env}, "format_version": "1", "manifest": "team.yaml"}
    (tmp_path / "team.lock").write_text(json.dumps(doc), encoding="utf-8")
    code, _, err = run_cli(capsys, "lifecycle", manifest)
    assert code == 1
    assert "characters once base64-encoded" in err and "Studio accepts at most 16384" in err
    assert "keep the manifest (and its lock file beside it) on the home volume" in err
    code, out, _ = run_cli(capsys, "lifecycle", manifest, "--manifest-path", "~/team.yaml")
    assert code == 0 and "manifest.lock" not in out
