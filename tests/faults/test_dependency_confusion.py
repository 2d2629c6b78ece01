"""Dependency confusion: the same name on the manifest's index and on an extra index.

The internal index (``index_url``) has ``delta 1.0``; an extra index
(``extra_index_urls``) has ``delta 9.0``, whose wheel drops a marker file into
site-packages, and ``extraonly 1.0``, which only it has. The rule reconciler
keeps: each package comes from the first index that has it, in the order
``index_url``, then ``extra_index_urls`` as listed. uv does that with
``--index-strategy first-index`` and the indexes passed in that order (uv's own
``--extra-index-url`` would be searched before ``--index-url``). pip merges all
indexes and takes the highest version anywhere, so ``installer: pip`` with
``extra_index_urls`` is refused before anything runs.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultrun import (
    Managed,
    env_hash,
    make_image,
    proc_env,
    run_cli,
    site_packages,
    state_documents,
    write_manifest,
)
from tests.support.servers import StaticServer, build_simple_index
from tests.support.wheels import WHEEL, build_wheel, dist_files, record_text, wheel_filename

MARKER = "CONFUSED_BY_THE_EXTRA_INDEX.txt"


def _wheel_with_marker(dest: Path, name: str, version: str) -> Path:
    """A wheel whose payload also puts ``MARKER`` at the top of site-packages."""
    files, info = dist_files(name, version)
    files[MARKER] = b"installed from the extra index\n"
    files[f"{info}/WHEEL"] = WHEEL
    files[f"{info}/RECORD"] = record_text(files, f"{info}/RECORD").encode()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / wheel_filename(name, version)
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(files, key=lambda p: (p.endswith("/RECORD"), p)):
            archive.writestr(path, files[path])
    return target


@pytest.fixture
def indexes(tmp_path: Path) -> Iterator[tuple[StaticServer, StaticServer]]:
    """(internal: delta 1.0; extra: delta 9.0 with the marker, and extraonly 1.0)."""
    build_wheel(tmp_path / "internal-wheels", "delta", "1.0")
    _wheel_with_marker(tmp_path / "extra-wheels", "delta", "9.0")
    build_wheel(tmp_path / "extra-wheels", "extraonly", "1.0")
    internal = StaticServer(build_simple_index(tmp_path / "internal-wheels", tmp_path / "i"))
    extra = StaticServer(build_simple_index(tmp_path / "extra-wheels", tmp_path / "e"))
    internal.start()
    extra.start()
    yield internal, extra
    internal.stop()
    extra.stop()


@pytest.fixture
def image(tmp_path: Path, channel: Path, wheelhouse: Path, isolated: dict[str, str]) -> Path:
    """The image prefix (conda pyfoo 1.0, pip alpha 1.0)."""
    return make_image(tmp_path / "image", channel, wheelhouse)


def _manifest(
    tmp_path: Path, image: Path, indexes: tuple[StaticServer, StaticServer], installer: str
) -> Path:
    internal, extra = indexes
    return write_manifest(
        tmp_path / "manifest.yaml",
        {"image": {"prefix": image, "pip": ["delta", "extraonly"]}},
        pip={"index_url": f"{internal.url}simple/", "extra_index_urls": [f"{extra.url}simple/"]},
        installer=installer,
    )


def test_uv_takes_each_package_from_the_first_index_that_has_it(
    tmp_path: Path,
    image: Path,
    indexes: tuple[StaticServer, StaticServer],
    isolated: dict[str, str],
) -> None:
    """Even with a user's uv set to merge indexes (UV_INDEX_STRATEGY=unsafe-best-match)."""
    internal, extra = indexes
    managed = Managed(image)
    manifest = _manifest(tmp_path, image, indexes, "auto")
    env = proc_env(isolated, tmp_path, UV_INDEX_STRATEGY="unsafe-best-match")

    run = run_cli(env, tmp_path / "state", "apply", manifest)

    assert run.returncode == 0, run.output
    site = site_packages(image)
    assert sorted(p.name for p in site.glob("delta*")) == ["delta", "delta-1.0.dist-info"]
    assert list(site.glob("extraonly-1.0.dist-info"))  # the extra index still serves
    assert not (site / MARKER).exists()
    # The extra index was never even asked for delta: the internal index has it.
    assert "/simple/delta/" in [r.path for r in internal.requests()]
    assert "/simple/delta/" not in [r.path for r in extra.requests()]
    assert not any("delta-9.0" in r.path for r in extra.requests())
    assert managed.unchanged()
    owned = state_documents(tmp_path / "state", image)["owned"]["packages"]
    assert owned["pip:delta"]["version"] == "1.0"


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_pip_with_extra_indexes_is_refused_before_anything_runs(
    command: str,
    tmp_path: Path,
    image: Path,
    indexes: tuple[StaticServer, StaticServer],
    isolated: dict[str, str],
) -> None:
    managed, whole = Managed(image), env_hash(image)
    manifest = _manifest(tmp_path, image, indexes, "pip")

    run = run_cli(proc_env(isolated, tmp_path), tmp_path / "state", command, manifest)

    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output
    assert run.stderr.startswith("error: refusing to install with pip from several indexes")
    assert "dependency confusion" in run.stderr and "nothing was changed" in run.stderr
    assert "installer: uv" in run.stderr  # what to do instead
    # Before anything ran: no installer asked either index, nothing was written.
    assert [s.requests() for s in indexes] == [[], []]
    assert managed.unchanged() and env_hash(image) == whole
    assert not (site_packages(image) / MARKER).exists()
    assert state_documents(tmp_path / "state", image) == {}
