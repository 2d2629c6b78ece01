"""The real tier's inputs: the pinned wheel cache, the image venv, the conda prefix made from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.real.stack import (
    IMAGE,
    PINS,
    SITE,
    Fetched,
    RealWheelsError,
    ensure_wheels,
    installed_versions,
)

pytestmark = pytest.mark.real

#: An index nothing listens on: a call that tried the network would fail.
DEAD_INDEX = "http://127.0.0.1:9/simple"


def test_the_pinned_stack_is_small_exact_and_cached_with_its_hashes(
    real_fetch: Fetched,
) -> None:
    assert real_fetch.fetched + real_fetch.cached == len(PINS)
    assert sum(p.size for p in PINS) < 200 * 1024 * 1024
    assert len({p.filename for p in PINS}) == len(PINS)
    for pin in PINS:
        assert (real_fetch.directory / pin.filename).stat().st_size == pin.size
        assert len(pin.sha256) == 64


def test_a_warm_cache_downloads_nothing(real_fetch: Fetched) -> None:
    # Every file is checked again; none is fetched, so an unreachable index is never asked.
    again = ensure_wheels(real_fetch.directory, index_url=DEAD_INDEX)
    assert (again.fetched, again.cached) == (0, len(PINS))


def test_a_corrupt_cached_wheel_is_fetched_again_and_a_failed_fetch_is_one_clear_error(
    real_wheels: Path, tmp_path: Path
) -> None:
    pin = next(p for p in PINS if p.name == "six")
    cache = tmp_path / "cache"
    cache.mkdir()
    data = bytearray((real_wheels / pin.filename).read_bytes())
    data[100] ^= 0xFF
    (cache / pin.filename).write_bytes(bytes(data))
    with pytest.raises(RealWheelsError) as caught:
        ensure_wheels(cache, [pin], index_url=DEAD_INDEX)
    first = str(caught.value).splitlines()[0]
    assert first == f"could not download 1 real wheels from {DEAD_INDEX} into {cache}:"
    assert str(caught.value).splitlines()[-1].startswith("hint: check the network, or set ")
    # Nothing half-downloaded is left behind beside the corrupt file.
    assert sorted(p.name for p in cache.iterdir()) == [pin.filename]


def test_the_image_venv_holds_exactly_the_pinned_image(image_master: Path) -> None:
    wanted = {}
    for text in IMAGE:
        req = Requirement(text)
        wanted[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    assert installed_versions(image_master) == wanted
    assert len(wanted) == 54


def test_the_conda_prefix_lists_each_dist_info_in_its_records(conda_master: Path) -> None:
    records = {}
    for path in sorted((conda_master / "conda-meta").glob("*.json")):
        body = json.loads(path.read_text())
        assert path.name == f"{body['name']}-{body['version']}-{body['build']}.json"
        records[body["name"]] = body
    assert len(records) == 55  # the 54 distributions and python
    assert f"{SITE}/PyJWT-2.8.0.dist-info/RECORD" in records["pyjwt"]["files"]
    assert f"{SITE}/jwt/__init__.py" in records["pyjwt"]["files"]
    assert f"{SITE}/matplotlib-3.9.0.dist-info/RECORD" in records["matplotlib-base"]["files"]
    installer = conda_master / SITE / "PyJWT-2.8.0.dist-info" / "INSTALLER"
    assert installer.read_text() == "conda\n"
    history = (conda_master / "conda-meta" / "history").read_text()
    assert history.count("==> ") == 1
    assert "+conda-forge/noarch::pyjwt-2.8.0-pyhd8ed1ab_0" in history
