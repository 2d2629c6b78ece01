"""The lifecycle script keeps a manifest that ``add`` changed on the home volume (issue 12).

The generated script's manifest step runs with bash in a simulated Studio home,
as ``tests/test_lifecycle.py`` does; it writes the embedded manifest only when the
home copy is absent or unchanged since the script last wrote it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.cli import main

BODY = "version: 1\nenvironments:\n  e:\n    prefix: {prefix}\n    pip: [{pip}]\n"


def _manifest_step(tmp_path: Path, pip: str, capsys: pytest.CaptureFixture[str]) -> str:
    manifest = tmp_path / "team.yaml"
    manifest.write_text(BODY.format(prefix=tmp_path, pip=pip), encoding="utf-8")
    capsys.readouterr()
    assert main(["lifecycle", str(manifest)]) == 0
    script = capsys.readouterr().out
    return script.split('log "start')[0]  # up to the bootstrap: the manifest step


def _start(head: str, home: Path) -> str:
    proc = subprocess.run(
        ["bash", "-c", head],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def test_home_copy_changed_by_add_is_kept_and_an_unchanged_one_is_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    copy = home / ".reconciler" / "manifest.yaml"
    first = _manifest_step(tmp_path, "alpha", capsys)

    out = _start(first, home)
    assert f"reconciler-lifecycle: manifest: the embedded one, written to {copy}\n" in out
    assert copy.read_text(encoding="utf-8") == BODY.format(prefix=tmp_path, pip="alpha")

    # Unchanged since the script wrote it: a new embedded manifest replaces it.
    second = _manifest_step(tmp_path, "alpha, beta", capsys)
    out = _start(second, home)
    assert f"manifest: the embedded one, written to {copy}\n" in out
    assert copy.read_text(encoding="utf-8") == BODY.format(prefix=tmp_path, pip="alpha, beta")

    # `reconciler add` (or a hand edit) changed the home copy: it is kept and used.
    added = BODY.format(prefix=tmp_path, pip='alpha, beta, "delta>=1.1"')
    copy.write_text(added, encoding="utf-8")
    out = _start(second, home)
    assert (
        f"manifest: kept {copy}, changed on the home volume since this script wrote it; "
        f"the embedded one is in {copy}.embedded\n" in out
    )
    assert copy.read_text(encoding="utf-8") == added
    assert (home / ".reconciler" / "manifest.yaml.embedded").read_text(
        encoding="utf-8"
    ) == BODY.format(prefix=tmp_path, pip="alpha, beta")
    out = _start(first, home)  # every later start too
    assert f"manifest: kept {copy}" in out
    assert copy.read_text(encoding="utf-8") == added
    assert not (home / ".reconciler" / "manifest.yaml.tmp").exists()


def test_a_home_copy_equal_to_the_embedded_one_is_tracked_from_then_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Written by an older script, which kept no digest: equal bytes are not a change.
    home = tmp_path / "home"
    copy = home / ".reconciler" / "manifest.yaml"
    copy.parent.mkdir(parents=True)
    copy.write_text(BODY.format(prefix=tmp_path, pip="alpha"), encoding="utf-8")
    out = _start(_manifest_step(tmp_path, "alpha", capsys), home)
    assert f"manifest: the embedded one, written to {copy}\n" in out
    assert (home / ".reconciler" / "manifest.yaml.sha256").read_text().strip()
    out = _start(_manifest_step(tmp_path, "beta", capsys), home)
    assert copy.read_text(encoding="utf-8") == BODY.format(prefix=tmp_path, pip="beta")
