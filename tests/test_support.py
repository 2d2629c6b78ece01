"""Quick checks of the test-support builders the rest of the suite stands on."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import envs
from tests.support.conda import PYTHON_VERSION, build_channel
from tests.support.wheels import STANDARD_WHEELS, build_wheel, record_hash

PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
SITE = f"lib/{PY}/site-packages"


def _run_python(prefix: Path, code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(envs.env_python(prefix)), "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_wheel_layout_and_record(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "epsilon-pkg", "1.0", ["alpha>=1"], dist_name="Epsilon-Pkg")
    assert wheel.name == "epsilon_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert names[-1] == "Epsilon_Pkg-1.0.dist-info/RECORD"
        metadata = archive.read("Epsilon_Pkg-1.0.dist-info/METADATA").decode()
        assert "Name: Epsilon-Pkg\n" in metadata
        assert "Requires-Dist: alpha>=1\n" in metadata
        assert "Root-Is-Purelib: true" in archive.read("Epsilon_Pkg-1.0.dist-info/WHEEL").decode()
        rows = list(csv.reader(io.StringIO(archive.read(names[-1]).decode())))
        assert sorted(row[0] for row in rows) == sorted(names)
        for path, digest, size in rows:
            if path.endswith("RECORD"):
                assert (digest, size) == ("", "")
            else:
                data = archive.read(path)
                assert (digest, int(size)) == (record_hash(data), len(data))
    assert build_wheel(tmp_path / "again", "epsilon-pkg", "1.0", ["alpha>=1"],
                       dist_name="Epsilon-Pkg").read_bytes() == wheel.read_bytes()  # fmt: skip


def test_wheelhouse_contents(wheelhouse: Path) -> None:
    assert len(list(wheelhouse.glob("*.whl"))) == len(STANDARD_WHEELS) == 13
    assert not list(wheelhouse.glob("ipykernel*"))


def test_uv_installs_chain_into_venv(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    venv = envs.make_venv(tmp_path / "venv")
    assert (venv / "pyvenv.cfg").is_file()
    envs.pip_install(venv, ["gamma", "epsilon-pkg"], wheelhouse, env=isolated)
    out = _run_python(
        venv,
        "import alpha, beta, gamma, epsilon_pkg; "
        "print(alpha.__version__, beta.__version__, gamma.__version__)",
        isolated,
    )
    assert out == "2.0 2.0 1.0"
    assert (venv / SITE / "Epsilon_Pkg-1.0.dist-info" / "METADATA").is_file()


def test_pip_accepts_wheels(tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]) -> None:
    target = tmp_path / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--isolated", "--no-index", "--quiet",
         "--find-links", str(wheelhouse), "--target", str(target), "needs-torchy"],
        env=isolated, check=True, capture_output=True,
    )  # fmt: skip
    assert (target / "torchy-2.0.dist-info" / "RECORD").is_file()


def test_isolated_env_drops_global_pip_config(isolated: dict[str, str]) -> None:
    assert isolated["UV_NO_CONFIG"] == "1"
    assert "PIP_FIND_LINKS" not in isolated
    assert Path(isolated["HOME"]).is_dir()
    assert envs.isolated_env()["UV_CACHE_DIR"] == isolated["UV_CACHE_DIR"]


def test_channel_is_idempotent(channel: Path, tmp_path: Path) -> None:
    again = build_channel(build_channel(tmp_path / "channel"))
    for package in sorted(channel.glob("noarch/*.tar.bz2")):
        assert (again / "noarch" / package.name).read_bytes() == package.read_bytes()
    repodata = json.loads((again / "noarch" / "repodata.json").read_text())
    assert len(repodata["packages"]) == 10
    assert f"python-{PYTHON_VERSION}-0.tar.bz2" in repodata["packages"]


def test_conda_prefix_records_dist_info(tmp_path: Path, channel: Path) -> None:
    prefix = envs.make_conda_prefix(tmp_path / "env", channel, ["pyfoo ==1.0"])
    meta = prefix / "conda-meta"
    assert sorted(p.name for p in meta.glob("*.json")) == [
        "libfoo-2.0-0.json",
        "pyfoo-1.0-0.json",
        f"python-{PYTHON_VERSION}-0.json",
    ]
    record = json.loads((meta / "pyfoo-1.0-0.json").read_text())
    assert f"{SITE}/pyfoo-1.0.dist-info/RECORD" in record["files"]
    assert (prefix / SITE / "pyfoo-1.0.dist-info" / "INSTALLER").read_text() == "conda\n"
    history = (meta / "history").read_text().splitlines()
    assert history[:2] == ["==> 2026-01-01 00:00:00 <==", "# cmd: image build"]
    assert f"+{channel.as_uri()}/noarch::pyfoo-1.0-0" in history


def test_hybrid_prefix_and_hand_changes(
    tmp_path: Path, channel: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    prefix = envs.make_conda_prefix(
        tmp_path / "env", channel, ["pyfoo ==1.0", "libfoo ==1.0", "pytorchy"], hybrid=True
    )
    assert (prefix / "pyvenv.cfg").is_file()
    code = "import pyfoo, torchy; print(pyfoo.__version__, torchy.__version__, pyfoo.__file__)"
    version, torchy, where = _run_python(prefix, code, isolated).split()
    assert (version, torchy) == ("1.0", "2.0")
    assert Path(where) == prefix / SITE / "pyfoo" / "__init__.py"

    with pytest.raises(Exception, match="locked"):  # pinned: libfoo 1.0 may not move
        envs.conda_install_more(prefix, channel, ["needs-libfoo2"])
    changes = envs.conda_install_more(prefix, channel, ["needs-libfoo2"], pin_installed=False)
    assert f"-{channel.as_uri()}/noarch::libfoo-1.0-0" in changes
    names = sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))
    assert "needs-libfoo2-1.0-0.json" in names
    assert "libfoo-2.0-0.json" in names
    assert "pytorchy-2.0-0.json" in names  # untouched records survive
    assert (prefix / "conda-meta" / "history").read_text().count("==> ") == 2

    envs.pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    assert (prefix / SITE / "alpha-1.0.dist-info").is_dir()


def test_tree_hash_sees_every_change(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("one")
    (root / "link").symlink_to("sub/a.txt")
    first = envs.tree_hash(root)
    assert envs.tree_hash(root) == first
    (root / "sub" / "a.txt").write_text("two")
    second = envs.tree_hash(root)
    assert second != first
    (root / "sub" / "a.txt").chmod(0o600)
    assert envs.tree_hash(root) != second
    (root / "sub" / "a.txt").chmod(0o644)
    (root / "link").unlink()
    (root / "link").symlink_to("elsewhere")
    assert envs.tree_hash(root) != second


def _explicit_list(path: Path) -> Path:
    """A small explicit list exercising the image generator's special cases."""
    cp = f"cp{sys.version_info.major}{sys.version_info.minor}"
    base = "https://conda.anaconda.org/conda-forge"
    lines = [
        "# platform: linux-64",
        "@EXPLICIT",
        f"{base}/linux-64/libzlib-1.3.2-h25fd6f3_3.conda#0de0122d9570a8ab637c6b73db268389",
        f"{base}/linux-64/python-{PY[6:]}.1-h8ab3286_1_cpython.conda#c6e02a78e3b6427c633328fea9399534",
        f"{base}/noarch/python_abi-{PY[6:]}-8_{cp}.conda#c3efd25ac4d74b1584d2f7a57195ddf1",
        f"{base}/noarch/tzdata-2026c-h151e31d_0.conda#fcb489df604d100968b737f2cb6076c6",
        f"{base}/noarch/six-1.17.0-pyhe01879c_1.conda#3339e3b65d58accf4ca4fb8748ab16b3",
        f"{base}/linux-64/pyyaml-6.0.3-py312h8a5da7c_0.conda#fba10c2007c8b06f77c5a23ce3a635ad",
        f"{base}/noarch/tzlike-2026c-pyhd8ed1ab_0.conda#fcb489df604d100968b737f2cb6076c6",
        f"{base}/noarch/badver-1.2.3.foo-pyhd8ed1ab_0.conda#fcb489df604d100968b737f2cb6076c6",
        f"{base}/linux-64/matplotlib-base-3.10.9-py312he3d6523_0.conda#9af6f7e5d5fd8a1d4d5e5e3a1b2c3d4e",
        f"{base}/linux-64/matplotlib-3.10.9-py312h7900ff3_0.conda#2f9af0c5a6dbd1a4e8c9b8c8d1b0e1f2",
        f"{base}/linux-64/pytorch-2.8.0-cpu_mkl_py312_h2_102.conda#0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bench_image_is_consistent_and_cached(tmp_path: Path, isolated: dict[str, str]) -> None:
    import rattler

    from bench import image

    env_out = _explicit_list(tmp_path / "small.env.out")
    dest = image.build_image(env_out, tmp_path / "img", python=sys.executable)
    assert image.image_stats(dest)["records"] == 11
    site = dest / SITE
    assert sorted(p.name for p in site.glob("*.dist-info")) == [
        "PyYAML-6.0.3.dist-info",
        "matplotlib-3.10.9.dist-info",
        "six-1.17.0.dist-info",
        "torch-2.8.0.dist-info",
        "tzlike-2026rc0.dist-info",  # conda 2026c is PEP 440 2026rc0
    ]  # none for python, the metapackage, the invalid version 1.2.3.foo
    record = json.loads((dest / "conda-meta" / "six-1.17.0-pyhe01879c_1.json").read_text())
    assert f"{SITE}/six-1.17.0.dist-info/RECORD" in record["files"]
    assert record["noarch"] == "python"
    assert len(record["paths_data"]["paths"]) == len(record["files"]) >= 5

    records = {
        r.name.normalized: r
        for r in map(rattler.PrefixRecord.from_path, sorted((dest / "conda-meta").glob("*.json")))
    }
    for rec in records.values():
        for dep in rec.depends:
            spec = rattler.MatchSpec(dep)
            assert spec.matches(records[spec.name.normalized]), (rec.name, dep)
    check = [envs.uv_bin(), "pip", "check", "--python", str(envs.env_python(dest))]
    subprocess.run(check, env=isolated, check=True, capture_output=True)

    again = image.build_image(env_out, tmp_path / "img2", python=sys.executable)
    assert envs.tree_hash(dest / "conda-meta", dest / "lib") == envs.tree_hash(
        again / "conda-meta", again / "lib"
    )
    cached = image.ensure_image(env_out, tmp_path / "cache", python=sys.executable)
    stamp = tmp_path / "cache" / "small.stamp"
    before = stamp.stat().st_mtime_ns
    assert image.ensure_image(env_out, tmp_path / "cache", python=sys.executable) == cached
    assert stamp.stat().st_mtime_ns == before


def test_bench_venv_image(tmp_path: Path, isolated: dict[str, str]) -> None:
    from bench import image

    dest = image.build_venv_image(tmp_path / "venv", 30, seed=3)
    assert image.image_stats(dest)["dist_infos"] == 30
    check = [envs.uv_bin(), "pip", "check", "--python", str(envs.env_python(dest))]
    subprocess.run(check, env=isolated, check=True, capture_output=True)
