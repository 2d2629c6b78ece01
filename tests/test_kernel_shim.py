"""``%load_ext reconciler`` in an *image* kernel that cannot import reconciler (issue 12).

The kernel is a real ipykernel started by jupyter_client in a venv whose base
installation has ipykernel and IPython but NOT reconciler nor its dependencies
(pyyaml, jsonschema, networkx, rattler, ruamel): what a SageMaker image kernel
is. The shim is made importable as the lifecycle script does it (``python -I -m
reconciler.kernel_shim KERNEL_DIR STARTUP_DIR CLI VERSION``: a stub package in a
directory of its own and an IPython startup file that appends that directory),
and ``%reconcile`` runs reconciler's CLI from another venv: this test venv's own
``reconciler`` console script.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

from reconciler import __version__
from reconciler.kernel_shim import STARTUP_FILE
from tests.support.envs import env_python, make_venv, pip_install
from tests.support.manifests import SITE
from tests.test_apply import PY
from tests.test_lifecycle import studio_wheelhouse  # noqa: F401 (a fixture)
from tests.test_magic import (
    MANIFEST,
    _Kernel,
    _kernel_spec,
    _pth_wheel,
    add_a_pth_package_then_a_refused_one,
)

#: The test venv's own command line: reconciler in "another venv" than the kernel's.
CLI = Path(sysconfig.get_path("scripts")) / "reconciler"

#: What an image kernel must not see: reconciler and what it depends on.
_HIDDEN = re.compile(
    r"(reconciler|env_reconciler|_editable_impl_.*|__editable__.*|_?yaml|pyyaml|jsonschema|"
    r"networkx|rattler|py_rattler|ruamel|uv)([-_.].*)?$",
    re.IGNORECASE,
)


def make_image_interpreter(dest: Path) -> Path:
    """A base Python at ``dest`` with ipykernel but without reconciler and its dependencies.

    As :func:`tests.test_apply.make_base_interpreter`, except that its site-packages is
    a directory of links to the test interpreter's entries minus :data:`_HIDDEN`.
    """
    real = Path(sys.base_prefix) / "bin" / f"python{PY}"
    stdlib = Path(sysconfig.get_path("stdlib"))
    purelib = Path(sysconfig.get_path("purelib"))
    (dest / "bin").mkdir(parents=True)
    exe = dest / "bin" / f"python{PY}"
    exe.write_bytes(real.read_bytes())
    exe.chmod(0o755)
    lib = dest / "lib" / f"python{PY}"
    lib.mkdir(parents=True)
    for entry in os.listdir(stdlib):
        if entry != "site-packages":
            (lib / entry).symlink_to(stdlib / entry)
    site_packages = lib / "site-packages"
    site_packages.mkdir()
    for entry in os.listdir(purelib):
        if not _HIDDEN.match(entry):
            (site_packages / entry).symlink_to(purelib / entry)
    for shared in (Path(sys.base_prefix) / "lib").glob("libpython*"):
        (dest / "lib" / shared.name).symlink_to(shared)
    return exe


def install_shim(home: Path, cli: Path = CLI) -> str:
    """What the lifecycle script runs at every start; its output."""
    proc = subprocess.run(
        [sys.executable, "-I", "-m", "reconciler.kernel_shim", str(home / ".reconciler/kernel"),
         str(home / ".ipython/profile_default/startup"), str(cli), __version__],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def image_env(tmp_path: Path) -> Path:
    """A venv (the kernel's environment) over :func:`make_image_interpreter`."""
    base = make_image_interpreter(tmp_path / "image-python")
    return make_venv(tmp_path / "image-env", system_site_packages=True, python=str(base))


def test_image_kernel_without_reconciler_adds_imports_and_a_refusal_changes_nothing(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], monkeypatch: Any
) -> None:
    monkeypatch.delenv("RECONCILER_MANIFEST", raising=False)
    image_kernel_session(tmp_path, Path(isolated["HOME"]), image_env(tmp_path), wheelhouse)


def image_kernel_session(
    tmp_path: Path, home: Path, venv: Path, wheelhouse: Path, site: str = SITE
) -> None:
    """The shim installed as the lifecycle script does it, then a kernel on ``venv`` (whose
    site-packages is ``site``: it has ipykernel, and neither reconciler nor its
    dependencies): ``%load_ext reconciler``, ``%reconcile add`` with exact output, imports
    without a restart, a refused add that changes nothing, then plan, drift and status.
    ``RECONCILER_MANIFEST`` must be unset: the manifest is the default one in ``home``."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in wheelhouse.glob("*.whl"):
        (wheels / wheel.name).write_bytes(wheel.read_bytes())
    _pth_wheel(wheels)
    pip_install(venv, ["alpha==1.0"], wheels)  # there before reconciler first looks: managed
    manifest = home / ".reconciler" / "manifest.yaml"  # the default: no RECONCILER_MANIFEST
    manifest.parent.mkdir()
    text = MANIFEST.format(wheelhouse=wheels, prefix=venv)
    manifest.write_text(text, encoding="utf-8")
    assert "RECONCILER_MANIFEST" not in os.environ
    kernel_dir = home / ".reconciler" / "kernel"
    startup = home / ".ipython" / "profile_default" / "startup" / STARTUP_FILE
    assert install_shim(home) == (
        f"kernel shim: wrote {kernel_dir}/reconciler and {startup} "
        "(`%load_ext reconciler` in kernels without reconciler)\n"
    )
    assert install_shim(home) == (
        f"kernel shim: up to date: {kernel_dir}/reconciler and {startup} "
        "(`%load_ext reconciler` in kernels without reconciler)\n"
    )
    assert sorted(p.name for p in kernel_dir.iterdir()) == ["reconciler"]
    _kernel_spec(home, env_python(venv))
    work = tmp_path / "work"  # the kernel's cwd: not this checkout, which holds reconciler
    work.mkdir()

    km, kc = start_new_kernel(kernel_name="nb-test", startup_timeout=60, cwd=str(work))
    kernel = _Kernel(kc)
    try:
        out, reply = kernel.run(
            "import sys, reconciler\n"
            "print(sys.prefix, reconciler.__shim__, reconciler.__file__, sys.path[-1])\n"
            "try:\n    import yaml\nexcept ImportError:\n    print('no yaml')"
        )
        assert out.split() == [
            str(venv), "True", str(kernel_dir / "reconciler/__init__.py"), str(kernel_dir),
            "no", "yaml",
        ], out  # fmt: skip
        out, reply = kernel.run("%load_ext reconciler")
        assert (reply["status"], out) == ("ok", "")

        out, reply = kernel.run("%reconcile add delta")
        assert reply["status"] == "ok", out
        assert out == (
            f"nb ({venv}, venv):\n"
            "  + install pip delta 1.1 (requested)\n"
            "  note: no baseline recorded yet: everything installed now is treated as managed "
            "(recorded at the first apply, or with `reconciler baseline capture`)\n"
            "Plan: 1 to install.\n"
            "[nb] applying (2 steps)\n"
            "[nb 1/2] pip (pip): downloading and installing 1 package\n"
            "[nb 2/2] verify\n"
            "[nb] done\n"
            f"Added to environments.nb.pip in {manifest} and installed: delta>=1.1\n"
            "reconcile: installed into this kernel; import it now, no restart needed\n"
        )  # the plan, then progress as a person reads it: no timestamps, no colour
        out, reply = kernel.run("import delta; print(delta.__version__)")
        assert (reply["status"], out) == ("ok", "1.1\n")
        assert manifest.read_text(encoding="utf-8") == text.replace(
            "    pip: []\n", '    pip: ["delta>=1.1"]\n'
        )

        add_a_pth_package_then_a_refused_one(kernel, manifest, venv, site)

        out, reply = kernel.run("%reconcile plan")
        assert (reply["status"], out) == (
            "ok",
            f"nb ({venv}, venv): up to date\n"
            "No changes: the environment already matches the manifest.\n",
        )
        out, reply = kernel.run("%reconcile drift")
        assert (reply["status"], out) == ("ok", f"nb ({venv}): no drift\nNo drift.\n")
        out, reply = kernel.run("%reconcile status")
        assert reply["status"] == "ok", out
        assert out.startswith("apply finished"), out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_startup_file_appends_so_a_kernel_with_reconciler_keeps_its_own(
    isolated: dict[str, str],
) -> None:
    import reconciler

    home = Path(isolated["HOME"])
    install_shim(home)
    startup = home / ".ipython" / "profile_default" / "startup" / STARTUP_FILE
    code = (
        f"exec(open({str(startup)!r}).read()); exec(open({str(startup)!r}).read())\n"
        "import sys, reconciler\n"
        "print(getattr(reconciler, '__shim__', False), reconciler.__file__)\n"
        f"print(sys.path.count({str(home / '.reconciler/kernel')!r}), sys.path[-1])\n"
        "print(sorted(n for n in dir() if 'reconciler' in n))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines() == [
        f"False {reconciler.__file__}",  # this checkout: the real package wins
        f"1 {home / '.reconciler/kernel'}",  # appended once, however often the file runs
        "['reconciler']",  # the file leaves no names behind in the user namespace
    ]


def test_the_shim_says_what_to_do_without_a_cli_or_a_matching_environment(
    tmp_path: Path, isolated: dict[str, str], monkeypatch: Any, capsys: Any
) -> None:
    from reconciler.kernel_shim import reconcile

    manifest = tmp_path / "m.yaml"
    text = f"version: 1\nenvironments:\n  other:\n    prefix: {tmp_path / 'elsewhere'}\n"
    manifest.write_text(text, encoding="utf-8")
    monkeypatch.setenv("RECONCILER_MANIFEST", str(manifest))
    assert reconcile("add delta", cli=str(CLI)) == 1
    assert capsys.readouterr().out == (
        f"error: {sys.prefix} is the prefix of no environment in {manifest} "
        "(environments: other)\n"
        f"  hint: add an environment with `prefix: {sys.prefix}` to the manifest, "
        "or run the notebook on a kernel of one of these environments\n"
    )
    assert manifest.read_text(encoding="utf-8") == text

    missing = tmp_path / "venv" / "bin" / "reconciler"
    assert reconcile("plan", cli=str(missing)) == 1
    assert capsys.readouterr().out == (
        f"reconcile: reconciler's command line is not at {missing}\n"
        "  what to do: the lifecycle script installs it there at every app start (its log is "
        "under ~/.local/state/reconciler/logs); or set RECONCILER_CLI to the path of a "
        "`reconciler` program\n"
    )
    monkeypatch.setenv("RECONCILER_CLI", str(CLI))  # the variable wins over the stub's path
    monkeypatch.setenv("RECONCILER_MANIFEST", str(tmp_path / "absent.yaml"))
    assert reconcile("drift", cli=str(missing)) == 1
    assert capsys.readouterr().out.startswith(f"reconcile: no manifest at {tmp_path}/absent.yaml")


def test_env_prefix_names_the_environment_by_its_prefix(
    tmp_path: Path, isolated: dict[str, str], capsys: Any
) -> None:
    from tests.support.manifests import run_cli

    here, there = tmp_path / "here", tmp_path / "there"
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\nenvironments:\n  a:\n    prefix: {here}\n  b:\n    prefix: {there}\n",
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "drift", manifest, "--env-prefix", there)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"b ({there}"), out  # only b, chosen by its prefix
    code, out, err = run_cli(capsys, "drift", manifest, "--env-prefix", there, "--env", "a")
    assert (code, out) == (1, "")
    assert err == (
        "error: --env and --env-prefix both name the environment\n  hint: give one of them\n"
    )
    code, out, err = run_cli(capsys, "plan", manifest, "--env-prefix", tmp_path)
    assert (code, out) == (1, "")
    assert err == (
        f"error: {tmp_path} is the prefix of no environment in {manifest} (environments: a, b)\n"
        f"  hint: add an environment with `prefix: {tmp_path}` to the manifest, or run the "
        "notebook on a kernel of one of these environments\n"
    )


def _installer_downloading(server: Any) -> None:
    """Wait until the installer asks for the wheel (the server then holds it): the step line
    is printed before the installer starts, and an interrupt before that reaches only
    reconciler."""
    import time

    for _ in range(1200):
        if any(
            r.path.endswith(".whl") and r.range is None and not r.agent.startswith("reconciler/")
            for r in server.requests()
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"the installer never asked for the wheel: {server.requests()}")


def test_interrupting_an_add_in_an_image_kernel_stops_it_and_changes_nothing(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], monkeypatch: Any
) -> None:
    from importlib import metadata

    from packaging.version import Version

    from tests.support.servers import build_simple_index, serve

    # The image's pip is this interpreter's: before 25.3 its dry run downloads the wheel
    # (pypa/pip#12603), and the held download would stall the plan, not the install.
    assert Version(metadata.version("pip")) >= Version("25.3"), "pyproject's test extra"
    home = Path(isolated["HOME"])
    venv = image_env(tmp_path)
    manifest = tmp_path / "manifest.yaml"
    monkeypatch.setenv("RECONCILER_MANIFEST", str(manifest))
    install_shim(home)
    _kernel_spec(home, env_python(venv))
    work = tmp_path / "work"
    work.mkdir()
    index = build_simple_index(wheelhouse, tmp_path / "index")
    with serve(index, delay=120.0) as server:  # the wheel download never ends in time
        text = (
            f"version: 1\ndefaults:\n  pip: {{index_url: '{server.url}simple/'}}\n"
            f"environments:\n  nb:\n    prefix: {venv}\n    pip: []\n"
        )
        manifest.write_text(text, encoding="utf-8")
        km, kc = start_new_kernel(kernel_name="nb-test", startup_timeout=60, cwd=str(work))
        try:
            _Kernel(kc).run("%load_ext reconciler")
            msg_id = kc.execute("%reconcile add delta")
            chunks: list[str] = []
            interrupted = False
            while True:
                msg = kc.get_iopub_msg(timeout=60)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    chunks.append(msg["content"]["text"])
                    if not interrupted and "downloading and installing" in "".join(chunks):
                        _installer_downloading(server)
                        km.interrupt_kernel()  # the stop button, while the installer downloads
                        interrupted = True
                elif kind == "error":
                    chunks.append(msg["content"]["ename"] + "\n")
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    break
            reply = kc.get_shell_msg(timeout=60)
            out = "".join(chunks)
            assert interrupted, out
            assert (reply["content"]["status"], reply["content"].get("ename")) == (
                "error",
                "KeyboardInterrupt",
            ), out
            # The command itself stopped, and said what it left, as it is: the installer
            # died of the interrupt, nothing reached the manifest or the environment.
            from reconciler.state.store import StateStore

            state = StateStore(Path(os.environ["RECONCILER_STATE_DIR"]))
            journal = state.env_dir(venv) / "journal.json"
            failed, said, raised = out.splitlines()[-3:]
            # pip dies of the SIGINT, or (in its start-up, or once it caught it) exits 1.
            assert failed in (
                f"[nb] failed: pip install into {venv} failed: killed by SIGINT (an "
                "interrupt: Ctrl-C, or a notebook's stop button)",
                f"[nb] failed: pip install into {venv} failed: interrupted (Ctrl-C, or a "
                "notebook's stop button), exit 1",
            ), out
            assert said == (
                f"interrupted: nothing was written to {manifest}; the install into {venv} was "
                "stopped before it changed a package: the environment is as it was (the "
                f"journal {journal} records it as failed)"
            ), out
            assert raised == "KeyboardInterrupt", out
            assert manifest.read_text(encoding="utf-8") == text
            assert not list((venv / SITE).glob("delta-*.dist-info"))
            out, reply = _Kernel(kc).run("%reconcile status")
            assert not out.startswith("apply running"), out  # nothing left running
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def test_on_studio_the_lifecycle_script_sets_up_the_shim_and_add_persists_across_starts(
    tmp_path: Path,
    isolated: dict[str, str],
    studio_wheelhouse: Path,  # noqa: F811 (the fixture imported above)
    monkeypatch: Any,
    capsys: Any,
) -> None:
    """The whole Studio path: the script bootstraps reconciler's venv from the wheelhouse
    and installs the shim; an image kernel runs ``%reconcile add`` with the defaults (no
    RECONCILER_* variables); the next start keeps the changed manifest and the shim."""
    from reconciler.cli import main

    home = Path(isolated["HOME"])
    for name in ("RECONCILER_STATE_DIR", "RECONCILER_MANIFEST", "RECONCILER_CLI"):
        monkeypatch.delenv(name, raising=False)  # the kernel uses the script's defaults
    venv = image_env(tmp_path)
    embedded = tmp_path / "team.yaml"
    embedded.write_text(
        f"version: 1\ndefaults:\n  pip: {{no_index: true, find_links: [{studio_wheelhouse}]}}\n"
        f"environments:\n  nb:\n    prefix: {venv}\n    pip: []\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    argv = [
        "lifecycle",
        str(embedded),
        "--wheel",
        str(studio_wheelhouse),
        "--python",
        sys.executable,
    ]
    assert main(argv) == 0
    script = tmp_path / "on-start.sh"
    script.write_text(capsys.readouterr().out, encoding="utf-8")
    env = dict(os.environ)

    def start() -> str:
        proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                              timeout=240, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    out = start()
    assert "kernel shim: wrote" in out and "ERROR" not in out and "WARNING" not in out, out
    manifest = home / ".reconciler" / "manifest.yaml"
    _kernel_spec(home, env_python(venv))
    work = tmp_path / "work"
    work.mkdir()
    km, kc = start_new_kernel(kernel_name="nb-test", startup_timeout=60, cwd=str(work))
    kernel = _Kernel(kc)
    try:
        out, reply = kernel.run("%load_ext reconciler")
        assert (reply["status"], out) == ("ok", "")
        out, reply = kernel.run("%reconcile add delta")
        assert reply["status"] == "ok", out
        assert f"Added to environments.nb.pip in {manifest} and installed: delta>=1.1\n" in out
        out, reply = kernel.run("import delta; print(delta.__version__)")
        assert (reply["status"], out) == ("ok", "1.1\n")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    out = start()  # the next app start keeps what the notebook added
    assert f"manifest: kept {manifest}, changed on the home volume" in out, out
    assert "kernel shim: up to date:" in out, out
    assert "delta>=1.1" in manifest.read_text(encoding="utf-8")
    assert [p.name for p in (venv / SITE).glob("delta-*.dist-info")] == ["delta-1.1.dist-info"]
