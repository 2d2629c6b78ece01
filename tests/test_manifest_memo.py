"""Remembered manifest models (reconciler/manifest/loader.py, world.py).

A manifest whose bytes, location, ``~`` and checking code are unchanged loads
from the model remembered in the state dir, without the YAML parser, equal to a
full load; the prefix checks that read the machine still run, and when one
would report a problem the full load reports it exactly as without a memo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import ValidationMemo, load_manifest
from reconciler.state.store import StateStore

REPO = Path(__file__).resolve().parent.parent


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    conda = tmp_path / "conda"
    (conda / "conda-meta").mkdir(parents=True)
    return _write(
        tmp_path / "team.yaml",
        f"""\
version: 1
protect: [numpy, "sagemaker*"]
defaults:
  channels: [conda-forge]
  pip: {{index_url: "https://pypi.example/simple", find_links: ["~/wheels"]}}
all: {{pip: ["ipywidgets>=8"]}}
environments:
  base:
    prefix: {conda}
    conda: ["pyarrow>=14"]
    pip: ["polars>=1,<2", "rich[jupyter]; python_version >= '3.9'"]
  dl:
    prefix: ~/envs/dl
    create: {{venv: /usr/bin/python3}}
    kernel: {{name: dl, display_name: "Python 3 (dl)"}}
""",
    )


def test_a_remembered_model_equals_a_full_load_and_skips_yaml(
    manifest: Path, tmp_path: Path
) -> None:
    store = StateStore(tmp_path / "state")
    memo = store.validation_memo()
    full = load_manifest(manifest, memo=memo)
    assert memo.changed and len(memo.models) == 1
    store.save_validation_memo(memo)
    assert load_manifest(manifest, memo=store.validation_memo()) == full == load_manifest(manifest)
    code = (
        "import sys; from reconciler.manifest import load_manifest; "
        "from reconciler.state.store import StateStore; "
        f"m = load_manifest({str(manifest)!r}, memo=StateStore(__import__('pathlib').Path("
        f"{str(tmp_path / 'state')!r})).validation_memo()); "
        "print(repr(m)); print(sorted(set(sys.modules) & {'yaml', 'jsonschema', 'rattler', "
        "'reconciler.manifest.semantics', 'packaging.requirements'}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
        env={**os.environ, "HOME": str(tmp_path / "home")},
    )  # fmt: skip
    shown, modules = proc.stdout.strip().splitlines()
    assert shown == repr(full)
    assert modules == "[]"


def test_a_prefix_check_that_now_fails_is_reported_as_without_a_memo(
    manifest: Path, tmp_path: Path
) -> None:
    memo = ValidationMemo()
    load_manifest(manifest, memo=memo)
    conda = tmp_path / "conda"
    (conda / "conda-meta").rmdir()  # no longer a conda environment
    with pytest.raises(ManifestError) as plain:
        load_manifest(manifest)
    with pytest.raises(ManifestError) as remembered:
        load_manifest(manifest, memo=memo)
    assert [str(p) for p in remembered.value.problems] == [str(p) for p in plain.value.problems]
    assert "is not a conda environment (no conda-meta/)" in str(plain.value.problems[0])
    # A prefix reached through a symbolic link is refused with or without the memo.
    (conda / "conda-meta").mkdir()
    real = tmp_path / "real-home"
    (real / "envs" / "dl").mkdir(parents=True)
    (tmp_path / "home").symlink_to(real)
    with pytest.raises(ManifestError) as plain:
        load_manifest(manifest)
    with pytest.raises(ManifestError) as remembered:
        load_manifest(manifest, memo=memo)
    assert [str(p) for p in remembered.value.problems] == [str(p) for p in plain.value.problems]
    assert "resolves through the symbolic link" in str(plain.value.problems[0])


def test_another_home_or_other_bytes_load_in_full(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memo = ValidationMemo()
    first = load_manifest(manifest, memo=memo)
    assert first.environment("dl").prefix == tmp_path / "home" / "envs" / "dl"
    monkeypatch.setenv("HOME", str(tmp_path / "other"))
    moved = load_manifest(manifest, memo=memo)
    assert moved.environment("dl").prefix == tmp_path / "other" / "envs" / "dl"
    assert moved.environment("dl").pip_settings.find_links == (str(tmp_path / "other/wheels"),)
    assert len(memo.models) == 2
    _write(manifest, manifest.read_text().replace("polars>=1,<2", "polars>=1,<3"))
    edited = load_manifest(manifest, memo=memo)
    assert edited.environment("base").pip[0].requirement == "polars>=1,<3"
    assert len(memo.models) == 3


def test_a_damaged_or_foreign_memo_entry_is_ignored(manifest: Path, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    memo = store.validation_memo()
    full = load_manifest(manifest, memo=memo)
    store.save_validation_memo(memo)
    path = tmp_path / "state" / "cache" / "manifests.json"
    data = json.loads(path.read_text())
    (key,) = data["models"]
    data["models"][key]["environments"][0]["@"] = "Unknown"
    path.write_text(json.dumps(data))
    assert load_manifest(manifest, memo=store.validation_memo()) == full
    data["models"][key] = {"@": "Manifest", "path": "x"}  # fields of another model
    path.write_text(json.dumps(data))
    assert load_manifest(manifest, memo=store.validation_memo()) == full
