"""Disk full: the environment, its state dir and TMPDIR on a 6 MB tmpfs.

The manifest asks for ``bigpkg``, a wheel with 7 MB of random bytes (it cannot
be compressed), which does not fit. uv fails with ENOSPC; left alone it would
leave the module and a ``bigpkg-1.0.dist-info`` without its payload behind (a
half-installed package every later run would take as installed). reconciler
removes what the failed install created, says the disk is full, and keeps its
state files whole; once there is room, the next apply converges.

One tmpfs is mounted per test under ``tmp_path`` and unmounted in teardown; the
tests are skipped only when mounting is not permitted here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultrun import (
    Managed,
    assert_clean_failure,
    env_hash,
    make_image,
    proc_env,
    run_cli,
    site_packages,
    state_documents,
    write_manifest,
)
from tests.support.wheels import WHEEL, dist_files, record_text, wheel_filename

SIZE = "6m"
BLOB_BYTES = 7 * 1024 * 1024


def _mount(path: Path, size: str, *, remount: bool = False) -> subprocess.CompletedProcess[str]:
    options = f"remount,size={size}" if remount else f"size={size}"
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 6 MB tmpfs at ``tmp_path/fs``."""
    mountpoint = tmp_path / "fs"
    mountpoint.mkdir()
    if shutil.which("mount") is None:
        pytest.fail("no `mount` command: install util-linux (the disk-full tests fill a tmpfs)")
    proc = _mount(mountpoint, SIZE)
    if proc.returncode != 0:
        pytest.fail(
            f"cannot mount a tmpfs ({(proc.stderr or proc.stdout).strip()}): the disk-full "
            "tests need a small file system of their own; run them as root"
        )
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture
def big_wheels(tmp_path: Path) -> Path:
    """A find-links directory (not on the small file system) with ``bigpkg 1.0``."""
    files, info = dist_files("bigpkg", "1.0")
    files["bigpkg/blob.bin"] = os.urandom(BLOB_BYTES)
    files[f"{info}/WHEEL"] = WHEEL
    files[f"{info}/RECORD"] = record_text(files, f"{info}/RECORD").encode()
    dest = tmp_path / "big-wheels"
    dest.mkdir()
    with zipfile.ZipFile(dest / wheel_filename("bigpkg", "1.0"), "w") as archive:
        for path in sorted(files, key=lambda p: (p.endswith("/RECORD"), p)):
            archive.writestr(path, files[path])
    return dest


@pytest.mark.parametrize("uv_cache", ["elsewhere", "on-the-full-disk"])
def test_install_that_does_not_fit_fails_clearly_and_leaves_nothing_behind(
    uv_cache: str,
    tmp_path: Path,
    small_fs: Path,
    big_wheels: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
) -> None:
    image = make_image(small_fs / "image", channel, wheelhouse)
    managed, whole = Managed(image), env_hash(image)
    state, tmp = small_fs / "state", small_fs / "tmp"
    tmp.mkdir()
    cache = tmp_path / "uv-cache" if uv_cache == "elsewhere" else small_fs / "uv-cache"
    env = proc_env(isolated, tmp_path, TMPDIR=str(tmp), UV_CACHE_DIR=str(cache))
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {"image": {"prefix": image, "pip": ["bigpkg"]}},
        pip={"no_index": True, "find_links": [str(big_wheels)]},
    )

    run = run_cli(env, state, "apply", manifest)

    assert_clean_failure(run, "the disk is full", "No space left on device")
    if uv_cache == "elsewhere":  # uv had copied part of it into the environment
        assert "removed what the failed uv install had left: bigpkg" in run.output
        assert "bigpkg-1.0.dist-info" in run.output
        assert "nothing it added is left in the environment" in run.output
    # Nothing half-installed; the managed bytes and the whole environment as before.
    assert not list(site_packages(image).glob("bigpkg*"))
    assert managed.unchanged()
    assert env_hash(image) == whole
    # The state files are whole JSON, and record the failure.
    docs = state_documents(state, image)
    assert docs["journal"]["status"] == "failed"
    assert "the disk is full" in docs["journal"]["error"]
    assert "pip:alpha" in docs["baseline"]["packages"]
    assert "pip:bigpkg" not in docs.get("owned", {}).get("packages", {})
    status = json.loads((state / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "failed"
    assert not [p for p in tmp.iterdir()]  # reconciler's temp files are gone too

    if uv_cache == "elsewhere":
        # With room again, the next apply converges from the recorded state.
        assert _mount(small_fs, "40m", remount=True).returncode == 0
        again = run_cli(env, state, "apply", manifest)
        assert again.returncode == 0, again.output
        assert len(list(site_packages(image).glob("bigpkg-1.0.dist-info"))) == 1
        assert (site_packages(image) / "bigpkg" / "blob.bin").stat().st_size == BLOB_BYTES
        assert managed.unchanged()
        assert state_documents(state, image)["journal"]["status"] == "done"


def test_a_state_write_on_a_full_disk_is_a_clear_error(
    small_fs: Path, tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """The state dir itself is full: one clear sentence, exit 1, old state files intact."""
    from tests.support.envs import make_venv

    venv = make_venv(tmp_path / "venv")
    state = small_fs / "state"
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\ndefaults:\n  pip: {{no_index: true, find_links: [{wheelhouse}]}}\n"
        f"environments:\n  v:\n    prefix: {venv}\n    pip: [delta]\n"
    )
    env = proc_env(isolated, tmp_path)
    first = subprocess.run(
        [*run_cli_argv(), "--state-dir", str(state), "baseline", "capture", str(manifest)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    baseline = next(state.glob("envs/*/baseline.json"))
    # An older baseline (a package since removed), so that capturing again must write.
    older = json.loads(baseline.read_bytes())
    older["packages"]["pip:gone"] = {"name": "gone", "manager": "pip", "version": "1.0"}
    baseline.write_text(json.dumps(older))
    good = baseline.read_bytes()
    with (small_fs / "filler").open("wb") as f:  # fill the disk to the last byte
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    again = subprocess.run(  # --force: an unchanged capture writes nothing otherwise
        [*run_cli_argv(), "--state-dir", str(state), "baseline", "capture", "--force",
         str(manifest)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert "the disk is full (no space left on device)" in again.stderr
    assert "Traceback" not in again.stderr and "internal error" not in again.stderr
    assert baseline.read_bytes() == good
    assert not [p for p in baseline.parent.iterdir() if p.name.endswith(".tmp")]


def run_cli_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "reconciler"]
