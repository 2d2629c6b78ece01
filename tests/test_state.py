"""reconciler.state: conda-meta, dist-infos, the conda<->pip join, user site, caches, the store.

Every environment here is real: venvs made with ``python -m venv``, conda prefixes
installed by rattler from the local test channel, distributions installed by uv
from the local wheelhouse. Hand-written metadata stands in only for formats no
installer on this machine writes offline (legacy egg-info, ``.egg-link``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import reconciler.plan.requirements as reconciler_requirements
import reconciler.state.conda as conda_module
import reconciler.state.python as python_module
from reconciler.errors import StateError
from reconciler.state.cache import ReadCache
from reconciler.state.conda import read_conda_meta, read_pinned, split_record_filename
from reconciler.state.environment import image_identity, read_state
from reconciler.state.python import read_distributions
from reconciler.state.store import (
    Baseline,
    Owned,
    OwnedPackage,
    StateStore,
    write_json_atomic,
)
from tests.support.conda import PYTHON_VERSION
from tests.support.envs import (
    conda_install_more,
    env_python,
    make_conda_prefix,
    make_venv,
    pip_install,
)
from tests.support.manifests import SITE, write_dist_info
from tests.support.shared import shared_data

PY_XY = f"{sys.version_info[0]}.{sys.version_info[1]}"
ENV_OUT = "sagemaker-distribution-4.4.1-cpu.env.out"

# A PEP 517 backend small enough to live in the source tree: uv builds the editable
# wheel with it offline (no build requirements), then installs it as PEP 660 says.
EDITABLE_BACKEND = """
import base64, hashlib, os, zipfile

NAME, VERSION = "Zeta_Edit", "0.3"
INFO = f"{NAME}-{VERSION}.dist-info"


def _hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def get_requires_for_build_editable(config_settings=None):
    return []


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    here = os.path.dirname(os.path.abspath(__file__))
    files = {
        f"{NAME}.pth": (here + "\\n").encode(),
        f"{INFO}/METADATA": (
            f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
            "Requires-Dist: alpha>=1\\n"
        ).encode(),
        f"{INFO}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
        b"Tag: py3-none-any\\n",
    }
    rows = "".join(f"{p},{_hash(d)},{len(d)}\\n" for p, d in files.items())
    files[f"{INFO}/RECORD"] = (rows + f"{INFO}/RECORD,,\\n").encode()
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return name
"""

EDITABLE_PYPROJECT = """\
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "Zeta_Edit"
version = "0.3"
dependencies = ["alpha>=1"]
"""


@pytest.fixture(scope="session")
def sagemaker_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 913-record SageMaker Distribution image prefix (bench.image, ~4 s, once)."""
    from bench import image

    return image.ensure_image(
        shared_data(ENV_OUT),
        tmp_path_factory.mktemp("images"),
        python=sys.executable,
    )


# -- conda-meta -----------------------------------------------------------------------------


def test_split_record_filename() -> None:
    record = split_record_filename("python-dateutil-2.9.0-pyhd8ed1ab_0.json")
    assert record is not None
    assert (record.name, record.version, record.build) == (
        "python-dateutil",
        "2.9.0",
        "pyhd8ed1ab_0",
    )
    assert record.nvb == "python-dateutil-2.9.0-pyhd8ed1ab_0"
    for bad in ("history", "pinned", "numpy.json", "numpy-1.26.json", "-1.0-0.json", "a-1-.json"):
        assert split_record_filename(bad) is None, bad


def test_conda_meta_names_come_from_file_names(
    tmp_path: Path, channel: Path, isolated: dict[str, str]
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["condaonly ==1.0"])
    meta = prefix / "conda-meta"
    # Names that do not split in three are ignored, as conda ignores them.
    (meta / "notarecord.json").write_text("{}")
    (meta / "two-parts.json").write_text("{}")
    (meta / "README.txt").write_text("x")
    # A record whose body is not JSON still names a package: only the name is trusted.
    (meta / "broken-9.9-x_1.json").write_text("not json {")

    records = read_conda_meta(prefix)
    assert sorted(records) == ["broken", "condaonly"]
    assert (records["condaonly"].version, records["condaonly"].build) == ("1.0", "0")
    assert records["broken"].filename == "broken-9.9-x_1.json"

    state = read_state(prefix)
    assert state.kind == "conda" and state.is_conda and not state.is_venv
    assert state.details["broken"].depends == ()
    assert state.details["condaonly"].channel.startswith("file://")
    assert read_conda_meta(tmp_path / "nowhere") == {}


def test_conda_and_pip_are_one_package(
    tmp_path: Path, channel: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["pytorchy ==1.0"], hybrid=True)
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)

    state = read_state(prefix)
    assert state.python_version == PY_XY
    assert state.site_packages == prefix / SITE
    assert state.details["pytorchy"].dists == ("torchy-1.0.dist-info",)
    assert state.dist_owner == {"torchy": "pytorchy"}
    packages = state.packages()
    torch = packages["conda:pytorchy"]
    assert torch.dist is not None
    assert (torch.dist.name, torch.dist.version, torch.dist.installer) == ("torchy", "1.0", "conda")
    assert "pip:torchy" not in packages
    assert packages["pip:alpha"].manager == "pip"
    assert packages["conda:python"].version == PYTHON_VERSION
    assert packages["conda:python"].dist is None
    assert sorted(packages) == ["conda:python", "conda:pytorchy", "pip:alpha"]
    assert state.package_for_dist("torchy") == "conda:pytorchy"
    assert state.package_for_dist("alpha") == "pip:alpha"


# -- Python distributions -------------------------------------------------------------------


def test_dist_info_name_requires_and_installer(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    venv = make_venv(tmp_path / "venv")
    pip_install(venv, ["epsilon-pkg", "beta==1.0", "alpha==1.0"], wheelhouse, env=isolated)
    site = venv / SITE
    write_dist_info(
        site,
        "Real.Name_Here",
        "0.1",
        ['alpha>=1; python_version >= "3"', 'delta; extra == "dev"'],
        directory="wrong_dir_name-9.9.dist-info",
        extra_headers="Summary: a folded\n        continuation: line\n",
        body="Requires-Dist: not-a-header\n",
    )

    dists = read_distributions(site)
    epsilon = dists["epsilon-pkg"]
    assert (epsilon.display_name, epsilon.directory) == ("Epsilon-Pkg", "Epsilon_Pkg-1.0.dist-info")
    assert epsilon.installer == "uv"
    assert dists["beta"].requires == ("alpha>=1",)
    assert dists["alpha"].version == "1.0"
    real = dists["real-name-here"]
    assert real.version == "0.1"
    assert real.requires == ('alpha>=1; python_version >= "3"', 'delta; extra == "dev"')
    assert real.installer == ""
    assert "wrong-dir-name" not in dists
    assert sorted(dists) == ["alpha", "beta", "epsilon-pkg", "real-name-here"]


def test_legacy_egg_info_and_egg_link(tmp_path: Path) -> None:
    site = tmp_path / SITE
    egg = site / "Legacy_Dir-1.5-py3.11.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: Legacy-Dir\nVersion: 1.5\n")
    (egg / "INSTALLER").write_text("pip\n")
    (egg / "requires.txt").write_text(
        textwrap.dedent(
            """\
            alpha>=1

            [test]
            beta

            [:python_version < "4"]
            delta>=1.0

            [docs:sys_platform == "linux"]
            gamma
            """
        )
    )
    (site / "legacy_file-2.0-py3.11.egg-info").write_text(
        "Metadata-Version: 1.0\nName: Legacy.File\nVersion: 2.0\n"
    )
    source = tmp_path / "src" / "devpkg"
    (source / "DevPkg.egg-info").mkdir(parents=True)
    (source / "DevPkg.egg-info" / "PKG-INFO").write_text(
        "Metadata-Version: 1.1\nName: DevPkg\nVersion: 0.0.1.dev0\n"
    )
    (source / "DevPkg.egg-info" / "requires.txt").write_text("alpha\n")
    (site / "DevPkg.egg-link").write_text(f"{source}\n.")
    (site / "Gone.egg-link").write_text(f"{tmp_path / 'no-such-source'}\n.")

    dists = read_distributions(site)
    assert sorted(dists) == ["devpkg", "legacy-dir", "legacy-file"]
    legacy = dists["legacy-dir"]
    assert (legacy.version, legacy.installer, legacy.editable) == ("1.5", "pip", False)
    assert legacy.requires == (
        "alpha>=1",
        'beta; extra == "test"',
        'delta>=1.0; (python_version < "4")',
        'gamma; extra == "docs" and (sys_platform == "linux")',
    )
    for text in legacy.requires:  # each is a valid PEP 508 requirement
        Requirement(text)
    assert (dists["legacy-file"].display_name, dists["legacy-file"].version) == (
        "Legacy.File",
        "2.0",
    )
    dev = dists["devpkg"]
    assert (dev.version, dev.editable, dev.directory) == ("0.0.1.dev0", True, "DevPkg.egg-link")
    assert dev.requires == ("alpha",)


def test_pep660_editable_installed_by_uv(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    source = tmp_path / "zeta"
    source.mkdir()
    (source / "pyproject.toml").write_text(EDITABLE_PYPROJECT)
    (source / "backend.py").write_text(EDITABLE_BACKEND)
    venv = make_venv(tmp_path / "venv")
    pip_install(venv, ["-e", str(source)], wheelhouse, env=isolated)
    # A wheel installed from a file path gets a direct_url.json too, but not an editable one.
    pip_install(venv, [str(wheelhouse / "delta-1.0-py3-none-any.whl")], wheelhouse, env=isolated)
    site = venv / SITE
    # pip's spelling of the same file (with spaces), for a dist made by hand.
    info = write_dist_info(site, "pipedit", "1.0", installer="pip")
    (info / "direct_url.json").write_text(
        json.dumps({"url": source.as_uri(), "dir_info": {"editable": True}})
    )

    direct_url = json.loads((site / "Zeta_Edit-0.3.dist-info" / "direct_url.json").read_text())
    assert direct_url["dir_info"] == {"editable": True}  # what uv really wrote
    dists = read_state(venv).dists
    zeta = dists["zeta-edit"]
    assert (zeta.display_name, zeta.version, zeta.installer) == ("Zeta_Edit", "0.3", "uv")
    assert zeta.requires == ("alpha>=1",)
    assert zeta.editable is True
    assert dists["pipedit"].editable is True
    assert (site / "delta-1.0.dist-info" / "direct_url.json").is_file()
    assert dists["delta"].editable is False
    assert dists["alpha"].editable is False


# -- user site ------------------------------------------------------------------------------


def _user_site_of(env: dict[str, str]) -> Path:
    """The user site the running interpreter would use with this HOME (ground truth)."""
    out = subprocess.run(
        [sys.executable, "-m", "site", "--user-site"],
        env=env,
        capture_output=True,
        text=True,
        check=False,  # exit code encodes ENABLE_USER_SITE, not failure
    ).stdout.strip()
    return Path(out)


def test_user_site_of_a_conda_prefix(
    tmp_path: Path, channel: Path, isolated: dict[str, str]
) -> None:
    prefix = make_conda_prefix(tmp_path / "conda", channel, ["pyfoo ==1.0"])
    assert not (prefix / "pyvenv.cfg").exists()
    user_site = Path(isolated["HOME"]) / ".local" / SITE
    assert _user_site_of(isolated) == user_site
    write_dist_info(user_site, "delta", "1.1", installer="pip")
    write_dist_info(user_site, "pyfoo", "2.0", installer="pip")

    state = read_state(prefix)
    assert sorted(state.user_site) == ["delta", "pyfoo"]
    assert state.user_site["pyfoo"].version == "2.0"
    assert state.dists["pyfoo"].version == "1.0"  # the environment's own copy
    assert "delta" not in state.dists


@pytest.mark.parametrize("system_site", [False, True], ids=["plain", "system-site-packages"])
def test_venv_user_site_follows_the_interpreter(
    tmp_path: Path, isolated: dict[str, str], system_site: bool
) -> None:
    venv = make_venv(tmp_path / "venv", system_site_packages=system_site)
    user_site = Path(isolated["HOME"]) / ".local" / SITE
    write_dist_info(user_site, "delta", "1.1", installer="pip")
    # What the venv's own interpreter puts on sys.path is the truth.
    code = f"import sys; print({str(user_site)!r} in sys.path)"
    sees = subprocess.run(
        [str(env_python(venv)), "-c", code],
        env=isolated,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert sees == str(system_site)

    state = read_state(venv)
    assert state.is_venv and state.kind == "venv"
    assert ("delta" in state.user_site) is system_site


def test_hybrid_prefix_never_reads_user_site(
    tmp_path: Path, channel: Path, isolated: dict[str, str]
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["pyfoo ==1.0"], hybrid=True)
    write_dist_info(Path(isolated["HOME"]) / ".local" / SITE, "delta", "1.1")
    state = read_state(prefix)
    assert state.is_conda and state.is_venv
    assert state.user_site == {}


# -- pinned, frozen, image identity, fingerprint --------------------------------------------


def test_pinned_and_frozen(tmp_path: Path, channel: Path, isolated: dict[str, str]) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["condaonly ==1.0"])
    before = read_state(prefix)
    assert (before.pinned, before.frozen) == ((), False)
    (prefix / "conda-meta" / "pinned").write_text(
        "# pins of the image\nlibfoo 1.0.*   # keep the ABI\n\n   \ncondaonly ==1.0\n"
    )
    assert read_pinned(prefix) == ("libfoo 1.0.*", "condaonly ==1.0")
    pinned = read_state(prefix)
    assert pinned.pinned == ("libfoo 1.0.*", "condaonly ==1.0")
    assert pinned.fingerprint != before.fingerprint
    (prefix / "conda-meta" / "frozen").write_text("{}")
    frozen = read_state(prefix)
    assert frozen.frozen is True
    assert frozen.fingerprint != pinned.fingerprint
    venv = read_state(make_venv(tmp_path / "venv"))
    assert (venv.pinned, venv.frozen, venv.kind) == ((), False, "venv")


def test_image_identity_follows_the_first_history_block(
    tmp_path: Path, channel: Path, isolated: dict[str, str]
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["condaonly ==1.0"], hybrid=True)
    history = prefix / "conda-meta" / "history"
    first = image_identity(prefix)
    assert first is not None and first.startswith("history:")

    conda_install_more(prefix, channel, ["libfoo ==1.0"])  # a hand change appends a block
    assert history.read_text().count("==> ") == 2
    assert image_identity(prefix) == first

    text = history.read_text()  # a new image rewrites the first block
    history.write_text(
        text.replace("==> 2026-01-01 00:00:00 <==", "==> 2026-06-01 00:00:00 <==", 1)
    )
    assert image_identity(prefix) not in (None, first)

    history.write_text("")  # rattler writes an empty history: fall back to pyvenv.cfg
    from_cfg = image_identity(prefix)
    assert from_cfg is not None and from_cfg.startswith("venv:")
    with (prefix / "pyvenv.cfg").open("a") as f:
        f.write("prompt = other\n")
    assert image_identity(prefix) not in (None, from_cfg)
    assert image_identity(tmp_path / "missing") is None


def test_fingerprint_changes_when_a_package_is_installed(
    tmp_path: Path, channel: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["condaonly ==1.0"], hybrid=True)
    first = read_state(prefix).fingerprint
    assert read_state(prefix).fingerprint == first
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    second = read_state(prefix).fingerprint
    assert second != first
    pip_install(prefix, ["alpha==2.0"], wheelhouse, env=isolated)
    third = read_state(prefix).fingerprint
    assert third not in (first, second)
    conda_install_more(prefix, channel, ["libfoo ==1.0"])
    assert read_state(prefix).fingerprint not in (first, second, third)
    missing = read_state(tmp_path / "missing")
    assert (missing.exists, missing.packages()) == (False, {})


# -- the read cache -------------------------------------------------------------------------


class Counter:
    """Counts the calls of a wrapped function."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.func(*args, **kwargs)


def _count_parsing(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter, Counter]:
    """Count record JSON bodies parsed and dist-info METADATA read by reconciler.state."""
    loads = Counter(json.load)
    monkeypatch.setattr(conda_module, "json", types.SimpleNamespace(load=loads))
    metadata = Counter(python_module._dist_info)
    monkeypatch.setattr(python_module, "_dist_info", metadata)
    return loads, metadata


def test_read_cache_second_read_parses_nothing(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["pyfoo ==1.0", "pytorchy"], hybrid=True)
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    store = StateStore(tmp_path / "state")
    cache = store.read_cache()
    loads, metadata = _count_parsing(monkeypatch)

    first = read_state(prefix, cache)
    assert loads.calls == len(first.conda) == 4  # python, libfoo, pyfoo, pytorchy
    assert metadata.calls == len(first.dists) == 3  # pyfoo, torchy, alpha
    assert cache.changed
    store.save_read_cache(cache)

    again = store.read_cache()
    loads.calls = metadata.calls = 0
    second = read_state(prefix, again)
    assert (loads.calls, metadata.calls) == (0, 0)
    assert again.changed is False
    assert second == first
    assert second.packages() == first.packages()
    assert second.dist_owner == {"pyfoo": "pyfoo", "torchy": "pytorchy"}


def test_read_cache_rereads_a_changed_record(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["condaonly ==1.0"], hybrid=True)
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    store = StateStore(tmp_path / "state")

    def read_and_save() -> Any:
        cache = store.read_cache()  # one cache per run, as the CLI does
        state = read_state(prefix, cache)
        store.save_read_cache(cache)
        return state

    read_and_save()
    loads, metadata = _count_parsing(monkeypatch)
    record = prefix / "conda-meta" / "condaonly-1.0-0.json"
    body = json.loads(record.read_text())
    body["depends"] = ["libfoo >=1"]
    stat = record.stat()
    record.write_text(json.dumps(body))
    os.utime(record, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert read_and_save().details["condaonly"].depends == ("libfoo >=1",)
    assert (loads.calls, metadata.calls) == (1, 0)

    # Same size and mtime as cached: not re-read (a record is never edited in place).
    loads.calls = 0
    assert read_and_save().details["condaonly"].depends == ("libfoo >=1",)
    assert loads.calls == 0

    pip_install(prefix, ["alpha==2.0"], wheelhouse, env=isolated)  # a new dist-info directory
    assert read_and_save().dists["alpha"].version == "2.0"
    assert (loads.calls, metadata.calls) == (0, 1)
    cached = store.read_cache().dists[str(prefix / SITE)]
    assert [k for k in cached if "alpha-" in k] == ["alpha-2.0.dist-info"]


# -- the state store ------------------------------------------------------------------------


def _baseline(prefix: Path) -> Baseline:
    return Baseline(
        prefix=str(prefix),
        captured_at="2026-01-01T00:00:00+00:00",
        image="history:abc",
        packages={"pip:alpha": {"name": "alpha", "manager": "pip", "version": "1.0", "build": ""}},
    )


def test_store_round_trip_and_atomic_writes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    prefix = tmp_path / "env"
    assert store.baseline(prefix) is None
    assert store.owned(prefix).packages == {}
    store.save_baseline(prefix, _baseline(prefix))
    store.save_owned(prefix, Owned({"pip:beta": OwnedPackage("beta", "pip", "2.0")}))
    cache = ReadCache()
    cache.put_match("k", True)
    store.save_read_cache(cache)

    loaded = store.baseline(prefix)
    assert loaded is not None
    assert loaded.packages == _baseline(prefix).packages
    assert loaded.image == "history:abc"
    assert store.owned(prefix).packages == {"pip:beta": OwnedPackage("beta", "pip", "2.0")}
    assert store.read_cache().matches == {"k": True}
    env_dir = store.env_dir(prefix)
    assert sorted(p.name for p in env_dir.iterdir()) == ["baseline.json", "owned.json"]
    assert sorted(p.name for p in (store.root / "cache").iterdir()) == ["read-cache.json"]
    assert store.env_dir(tmp_path / "other") != env_dir


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "file.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"b": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["file.json"]


CORRUPT = {
    "truncated": '{"format": 1, "packages": {"pip:al',
    "empty": "",
    "not-an-object": "[1, 2]",
    "other-format": '{"format": 99, "packages": {}}',
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=list(CORRUPT))
def test_corrupt_baseline_is_an_error(tmp_path: Path, content: str) -> None:
    store = StateStore(tmp_path / "state")
    prefix = tmp_path / "env"
    store.save_baseline(prefix, _baseline(prefix))
    path = store.env_dir(prefix) / "baseline.json"
    path.write_text(content)
    with pytest.raises(StateError) as caught:
        store.baseline(prefix)
    message = str(caught.value)
    assert str(path) in message
    assert "corrupt" in message or "not a reconciler v1 state file" in message
    assert "hint: run `reconciler baseline capture` to record it again" in message


def test_baseline_with_bad_packages_points_to_capture(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    prefix = tmp_path / "env"
    path = store.env_dir(prefix) / "baseline.json"
    write_json_atomic(path, {"format": 1, "packages": {"pip:alpha": {"name": "alpha"}}})
    with pytest.raises(StateError) as caught:
        store.baseline(prefix)
    assert str(path) in str(caught.value)
    assert "reconciler baseline capture" in str(caught.value)
    path.write_text("{oops")
    with pytest.raises(StateError, match="baseline capture"):
        store.baseline(prefix)


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"format": 1, "packages": []}', "null"],
    ids=["json", "packages", "null"],
)
def test_corrupt_owned_is_an_error(tmp_path: Path, content: str) -> None:
    store = StateStore(tmp_path / "state")
    prefix = tmp_path / "env"
    path = store.env_dir(prefix) / "owned.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(StateError) as caught:
        store.owned(prefix)
    assert str(path) in str(caught.value)
    assert "hint: move it aside; reconciler then treats those packages as foreign" in str(
        caught.value
    )


@pytest.mark.parametrize(
    "content",
    ["{half", '{"format": 1, "records": 5, "dists": [1], "matches": {"x": "yes"}}', "[]"],
    ids=["json", "shapes", "list"],
)
def test_corrupt_read_cache_is_rebuilt(
    tmp_path: Path, channel: Path, wheelhouse: Path, isolated: dict[str, str], content: str
) -> None:
    prefix = make_conda_prefix(tmp_path / "env", channel, ["pytorchy ==1.0"], hybrid=True)
    store = StateStore(tmp_path / "state")
    path = store.root / "cache" / "read-cache.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    cache = store.read_cache()
    assert (cache.records, cache.dists, cache.matches) == ({}, {}, {})
    state = read_state(prefix, cache)
    assert state.dist_owner == {"torchy": "pytorchy"}
    store.save_read_cache(cache)
    data = json.loads(path.read_text())
    assert data["format"] == 1
    assert "pytorchy-1.0-0.json" in data["records"][str(prefix / "conda-meta")]


def test_a_save_writes_unchanged_sections_as_read(
    tmp_path: Path,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plan that parsed one new requirement changed only the requirement tables: the
    save encodes them alone and writes the conda records and distributions as read."""
    from reconciler.plan.requirements import parse

    prefix = make_conda_prefix(tmp_path / "env", channel, ["pyfoo ==1.0"], hybrid=True)
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    store = StateStore(tmp_path / "state")
    path = store.root / "cache" / "read-cache.json"
    cache = store.read_cache()
    read_state(prefix, cache)
    store.save_read_cache(cache)
    first = path.read_bytes()
    assert json.loads(first)["format"] == 1  # one JSON document, a section to a line
    assert [line[:10] for line in first.split(b"\n")] == [
        b'{"format":', b',"records"', b',"dists":{', b',"matches"', b',"requirem', b"}", b"",
    ]  # fmt: skip

    again = store.read_cache()
    read_state(prefix, again)
    encoded: list[Any] = []
    dumps = json.dumps
    monkeypatch.setattr(json, "dumps", lambda obj, **kw: encoded.append(obj) or dumps(obj, **kw))
    with monkeypatch.context() as m:
        m.setattr(reconciler_requirements, "_tables", again.requirements)
        parse.cache_clear()
        parse("beta>=2")
    store.save_read_cache(again)
    assert encoded == [again.requirements.to_json()]  # nothing else encoded again
    second = path.read_bytes()
    assert second.split(b"\n")[1:4] == first.split(b"\n")[1:4]
    assert store.read_cache().requirements.parsed["beta>=2"][0] == "beta"


def test_a_section_read_in_part_is_encoded_again(tmp_path: Path) -> None:
    """What a read dropped (a damaged table, tables of another packaging version, the
    earlier single-line file) is not written back as it was read."""
    store = StateStore(tmp_path / "state")
    path = store.root / "cache" / "read-cache.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        b'{"format":1\n,"records":{"/x/conda-meta":5}\n,"dists":{"/x/site":{}}\n'
        b',"matches":{"k":"yes"}\n,"requirements":{"packaging":"0.1","parsed":{"a":1}}\n}\n'
    )
    cache = store.read_cache()
    assert (cache.records, cache.dists, cache.matches) == ({}, {"/x/site": {}}, {})
    cache.put_match("j", True)
    store.save_read_cache(cache)
    saved = path.read_bytes()
    assert b"conda-meta" not in saved and b'"yes"' not in saved and b'"0.1"' not in saved
    assert json.loads(saved)["dists"] == {"/x/site": {}}  # taken whole, written as read
    assert store.read_cache().matches == {"j": True}

    path.write_text(json.dumps({"format": 1, "matches": {"k": True}}))  # one line
    cache = store.read_cache()
    cache.put_match("j", False)
    store.save_read_cache(cache)
    assert json.loads(path.read_bytes())["matches"] == {"k": True, "j": False}
    assert len(path.read_bytes().split(b"\n")) == 7


# -- a real image ---------------------------------------------------------------------------


def test_sagemaker_distribution_image(
    sagemaker_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path / "state")
    cache = store.read_cache()
    state = read_state(sagemaker_image, cache)
    assert len(state.conda) == 913
    assert len(state.dists) == 620
    assert set(state.dist_owner) == set(state.dists)  # every dist ships with a conda package
    packages = state.packages()
    assert len(packages) == 913
    assert not [key for key in packages if key.startswith("pip:")]
    assert all(state.conda[owner] for owner in state.dist_owner.values())
    assert state.user_site == {}
    store.save_read_cache(cache)

    loads, metadata = _count_parsing(monkeypatch)
    again = read_state(sagemaker_image, store.read_cache())
    assert (loads.calls, metadata.calls) == (0, 0)
    assert again.fingerprint == state.fingerprint
    assert again.dist_owner == state.dist_owner
