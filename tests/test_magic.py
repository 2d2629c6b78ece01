"""``%load_ext reconciler`` and ``%reconcile`` in a real IPython kernel (issue 12).

The kernel is a real ipykernel started by jupyter_client in a venv that sees
this checkout (through the base interpreter's site-packages, as in
``tests/test_apply.py``); its environment has ipykernel's ``FORCE_COLOR=1``. The
manifest uses ``installer: pip`` so the pip report reconciler parses is the one
FORCE_COLOR used to break, and a local wheelhouse (``no_index`` + ``find_links``).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

from tests.support.envs import env_python, pip_install
from tests.support.manifests import SITE
from tests.support.wheels import WHEEL, dist_files, record_text, wheel_filename
from tests.test_apply import make_kernel_venv

MANIFEST = """\
# The kernel's environment (a comment add must keep).
version: 1
defaults:
  installer: pip
  pip: {{no_index: true, find_links: ["{wheelhouse}"]}}
environments:
  nb:
    prefix: {prefix}
    pip: []
"""


def _pth_wheel(dest: Path) -> Path:
    """``pthpkg`` 1.0: its module ``pthmod`` is importable only through its ``.pth`` file."""
    files, info = dist_files("pthpkg", "1.0")
    files["pthpkg.pth"] = b"pthpkg_extra\n"
    files["pthpkg_extra/pthmod.py"] = b"VALUE = 'from a .pth directory'\n"
    files[f"{info}/WHEEL"] = WHEEL
    files[f"{info}/RECORD"] = record_text(files, f"{info}/RECORD").encode()
    target = dest / wheel_filename("pthpkg", "1.0")
    with zipfile.ZipFile(target, "w") as archive:
        for name in sorted(files):
            archive.writestr(name, files[name])
    return target


def _kernel_spec(home: Path, python: Path) -> None:
    directory = home / ".local/share/jupyter/kernels/nb-test"
    directory.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "nb-test", "language": "python"}
    (directory / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


class _Kernel:
    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, code: str) -> tuple[str, dict[str, Any]]:
        chunks: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            if msg["header"]["msg_type"] == "stream":
                chunks.append(msg["content"]["text"])
            elif msg["header"]["msg_type"] == "error":
                chunks.append("\n".join(msg["content"]["traceback"]))

        reply = self.client.execute_interactive(code, timeout=120, output_hook=collect)
        return "".join(chunks), reply["content"]


def add_a_pth_package_then_a_refused_one(
    kernel: _Kernel, manifest: Path, venv: Path, site: str = SITE
) -> None:
    """``%reconcile add`` of a package whose module is on sys.path only through its .pth
    file imports without a restart (new .pth files are read); a refused add then leaves the
    manifest's bytes and the installed set as they were. The in-process magic and the image
    kernel's shim both promise this."""
    out, reply = kernel.run("%reconcile add pthpkg")
    assert reply["status"] == "ok", out
    out, reply = kernel.run("import pthmod; print(pthmod.VALUE)")
    assert (reply["status"], out) == ("ok", "from a .pth directory\n")

    before = manifest.read_bytes()
    out, reply = kernel.run("%reconcile add beta==2.0")
    assert reply["status"] == "ok", out
    assert "refused: beta 2.0 requires alpha>=2; alpha is managed at 1.0" in out
    assert (
        "Not added: the plan refuses a change (above), so nothing was installed and "
        f"{manifest} is unchanged." in out
    )
    assert "what to do: choose a version that the managed packages allow" in out
    assert manifest.read_bytes() == before
    assert not list((venv / site).glob("beta-*.dist-info"))
    assert [p.name for p in (venv / site).glob("alpha-*.dist-info")] == ["alpha-1.0.dist-info"]


def test_reconcile_add_in_a_kernel_installs_imports_and_writes_and_a_refusal_changes_nothing(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], monkeypatch: Any
) -> None:
    venv = make_kernel_venv(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in wheelhouse.glob("*.whl"):
        (wheels / wheel.name).write_bytes(wheel.read_bytes())
    _pth_wheel(wheels)
    wheelhouse = wheels
    # alpha 1.0 is there before reconciler first sees the environment: managed.
    pip_install(venv, ["alpha==1.0"], wheelhouse)
    manifest = tmp_path / "home-volume" / "manifest.yaml"
    manifest.parent.mkdir()
    manifest.write_text(MANIFEST.format(wheelhouse=wheelhouse, prefix=venv), encoding="utf-8")
    monkeypatch.setenv("RECONCILER_MANIFEST", str(manifest))
    _kernel_spec(Path(isolated["HOME"]), env_python(venv))

    km, kc = start_new_kernel(kernel_name="nb-test", startup_timeout=60)
    kernel = _Kernel(kc)
    try:
        out, reply = kernel.run("import os, sys; print(os.environ['FORCE_COLOR'], sys.prefix)")
        assert out.split() == ["1", str(venv)]  # a kernel's environment, not a terminal's

        out, reply = kernel.run("%load_ext reconciler")
        assert reply["status"] == "ok", out

        out, reply = kernel.run("%reconcile add delta")
        assert reply["status"] == "ok", out
        assert "+ install pip delta 1.1 (requested)" in out
        assert f"Added to environments.nb.pip in {manifest} and installed: delta>=1.1" in out
        assert "reconcile: installed into this kernel; import it now, no restart needed" in out

        out, reply = kernel.run("import delta; print(delta.__version__)")
        assert (reply["status"], out) == ("ok", "1.1\n")
        added = manifest.read_text(encoding="utf-8")
        assert added == MANIFEST.format(wheelhouse=wheelhouse, prefix=venv).replace(
            "    pip: []\n", '    pip: ["delta>=1.1"]\n'
        )  # the comment, key order and flow style kept

        add_a_pth_package_then_a_refused_one(kernel, manifest, venv)

        out, reply = kernel.run("%reconcile drift")
        assert reply["status"] == "ok", out
        # FORCE_COLOR (ipykernel's) turns colour on; Jupyter renders the escapes.
        assert re.sub("\x1b\\[[0-9;]*m", "", out) == f"nb ({venv}): no drift\nNo drift.\n"

        out, reply = kernel.run("%reconcile status")
        assert reply["status"] == "ok", out
        assert out.startswith("apply finished"), out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_reconcile_says_what_to_do_when_the_kernel_is_not_in_the_manifest(
    tmp_path: Path, isolated: dict[str, str], monkeypatch: Any, capsys: Any
) -> None:
    from reconciler.magic import reconcile

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\nenvironments:\n  other:\n    prefix: {tmp_path / 'elsewhere'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("RECONCILER_MANIFEST", str(manifest))
    import sys

    assert reconcile("add delta") == 1
    out = capsys.readouterr().out
    assert out == (
        f"reconcile: this kernel's environment ({sys.prefix}) is not in {manifest} "
        "(environments: other)\n"
        f"  what to do: add an environment with `prefix: {sys.prefix}` to the manifest, "
        "or run the notebook on a kernel of one of these environments\n"
    )
    monkeypatch.setenv("RECONCILER_MANIFEST", str(tmp_path / "absent.yaml"))
    assert reconcile("plan") == 1
    assert capsys.readouterr().out.startswith(f"reconcile: no manifest at {tmp_path}/absent.yaml")


def test_reconcile_without_a_command_prints_its_usage(capsys: Any, monkeypatch: Any) -> None:
    import sys

    from reconciler.magic import reconcile

    monkeypatch.setenv("RECONCILER_MANIFEST", "/nonexistent/m.yaml")
    assert reconcile("") == 1
    assert capsys.readouterr().out == (
        "usage: %reconcile add [--conda] [--no-apply] SPEC...   install and write into the "
        "manifest\n"
        "       %reconcile remove NAME...                       drop from the manifest "
        "(uninstalls nothing)\n"
        "       %reconcile plan | drift | status\n"
        f"acts on this kernel's environment ({sys.prefix}) in /nonexistent/m.yaml\n"
    )
    assert reconcile("upgrade x") == 1
    assert capsys.readouterr().out.startswith("reconcile: unknown command 'upgrade'\nusage: ")
