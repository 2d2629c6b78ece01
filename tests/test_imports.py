"""What a pending ``plan``, a pending ``apply`` and a locked ``apply`` import (issue 13:
"nothing compiled at import that the path does not use").

Each module below costs milliseconds at import and serves only other paths: a lock
file, an HTML index page, hashing file contents, a write's time stamp, a kernelspec,
a full manifest load (the memo answers a repeated one), a conda solve, a manifest's
``create`` and ``kernel`` values. (The installer failure messages' module is imported,
but compiles its patterns only for a failure.) Each command runs for real, in a fresh
interpreter, on a real venv with a missing package.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from reconciler.digest import sha256
from tests.support.envs import make_venv, pip_install
from tests.support.manifests import REPO, SITE, write_manifest
from tests.support.servers import StaticServer, build_simple_index

#: Not imported by a repeated plan of a pip-only manifest with no lock file and no kernel.
UNUSED = (
    "reconciler.lockfile.model", "reconciler.lockfile.resolver", "html.parser", "hashlib",
    "_hashlib", "datetime", "reconciler.state.kernels", "yaml", "jsonschema", "rattler",
    "networkx", "urllib.request", "reconciler.manifest.optional", "argparse", "gettext",
    "uv",
)  # fmt: skip
#: Not imported by a repeated pending plan (a warm read cache holds its requirement
#: answers: nothing is parsed) or apply.
PARSER = ("packaging.requirements", "packaging.markers", "packaging._parser")
#: Not imported by a repeated pending plan before its preview starts (the clash check's
#: reader, and the wheel tags with it, are imported by a thread started with the preview;
#: the installed versions pinned are in PEP 440's usual form; the constraints file is
#: made without tempfile, and with it shutil).
BEFORE_PREVIEW_UNUSED = (
    "csv", "reconciler.backends.wheels", "packaging.tags", "packaging.version", "tempfile",
    "shutil", *PARSER,
)  # fmt: skip
#: Not imported by a repeated pending plan at all: the wheel tags are kept with the
#: interpreter's probe (packaging.tags imports logging and platform), the wheel file
#: names are read without packaging.utils, and the RECORD of a wheel read before is
#: cached (no zipfile, and with it shutil).
WARM_PLAN_UNUSED = (
    "packaging.tags", "packaging.utils", "logging", "platform", "zipfile", "shutil", "tempfile",
)  # fmt: skip
#: Not imported by a pending apply either: its parser builds only the apply command, and
#: the modules of the other commands' handlers stay out.
APPLY_UNUSED = (
    *UNUSED,
    *PARSER,
    "reconciler.edit",
    "reconciler.apply.kernels",
    "reconciler.lifecycle",
)
#: Value classes (``reconciler.values``) a plan or an apply would define and never use.
UNUSED_CLASSES = ("class:Create", "class:Kernel", "class:Problem")
#: Prints the modules imported by the run, and ``class:NAME`` for each value class of
#: reconciler's that it defined.
PROBE = (
    "import sys; before = set(sys.modules); from reconciler.entry import main; "
    "code = main(sys.argv[1:]); new = sorted(set(sys.modules) - before); "
    "new += sorted({f'class:{v.__name__}' for m in new if m.startswith('reconciler') "
    "for v in vars(sys.modules[m]).values() "
    "if isinstance(v, type) and '__value_fields__' in vars(v) and v.__module__ == m}); "
    "import json; print(json.dumps({'code': code, 'new': new}))"
)

#: Prints the modules imported when the first process (the preview, or what is newest
#: asked beside it) starts, and stops.
BEFORE_PREVIEW = (
    "import json, os, subprocess, sys, threading; before = set(sys.modules)\n"
    "first = threading.Lock()\n"
    "def started(self, *args, **kwargs):\n"
    "    first.acquire()  # a process started beside it waits for the exit\n"
    "    print(json.dumps({'code': 0, 'new': sorted(set(sys.modules) - before)}), flush=True)\n"
    "    os._exit(0)\n"
    "subprocess.Popen.__init__ = started\n"
    "from reconciler.entry import main; main(sys.argv[1:])"
)


def _run(
    env: dict[str, str], state: Path, command: str, manifest: Path, probe: str = PROBE
) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", probe, "--state-dir", str(state), command, str(manifest)],
        env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    out, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("{"), proc.stdout + proc.stderr
    result = json.loads(last)
    return result["code"], result["new"], out


def _plan(env: dict[str, str], state: Path, manifest: Path) -> tuple[int, list[str], str]:
    return _run(env, state, "plan", manifest)


def _pending(tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]) -> tuple[Path, Path, Path]:
    """A venv holding alpha 1.0 whose manifest asks for alpha and beta (one to install):
    (prefix, manifest, state dir)."""
    prefix = make_venv(tmp_path / "venv")
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    manifest = write_manifest(
        tmp_path / "manifest.yaml", {"e": {"prefix": prefix, "pip": ["alpha", "beta"]}},
        wheelhouse=wheelhouse,
    )  # fmt: skip
    return prefix, manifest, tmp_path / "state"


def test_a_pending_plan_imports_only_what_it_uses(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    _, manifest, state = _pending(tmp_path, wheelhouse, isolated)
    code, first, out = _plan(isolated, state, manifest)
    assert code == 0 and "+ install pip beta 1.0" in out, out
    # The first load parses the YAML (and remembers the model), without PyYAML for the
    # usual YAML (reconciler.manifest.yaml_fast); a valid manifest of simple requirements
    # needs neither jsonschema (the generated schema check says valid) nor packaging's
    # parser (reconciler.pep508).
    assert "reconciler.manifest.yaml_fast" in first and "yaml" not in first
    assert "jsonschema" not in first and "packaging.requirements" not in first
    code, new, again = _plan(isolated, state, manifest)
    assert (code, again) == (0, out)
    assert "reconciler.plan.planner" in new and "reconciler.plan.requirements" in new
    assert sorted(set(new) & {*UNUSED, *PARSER, *UNUSED_CLASSES, *WARM_PLAN_UNUSED}) == []
    assert "reconciler.backends.wheels" in new  # the clash check read beta's wheel
    assert "class:Manifest" in new and "class:Environment" in new
    # With the record of this plan's uv preview, it starts before the planner loads
    # (reconciler/backends/speculative.py); without it, once the planner reaches it.
    _, speculated, _ = _run(isolated, state, "plan", manifest, BEFORE_PREVIEW)
    assert "reconciler.backends.speculative" in speculated, speculated
    assert "reconciler.plan.planner" not in speculated and "yaml" not in speculated
    (state / "cache" / "previews.stamps").unlink()
    _, before_preview, _ = _run(isolated, state, "plan", manifest, BEFORE_PREVIEW)
    assert "reconciler.backends.process" in before_preview
    assert sorted(set(before_preview) & set(BEFORE_PREVIEW_UNUSED)) == []
    # With a lock file beside the manifest, the lock code loads (and says it is stale).
    manifest.with_suffix(".lock").write_text("{}\n")
    code, new, out = _plan(isolated, state, manifest)
    assert code == 1 and "reconciler.lockfile.model" in new, out


def test_a_repeated_refused_plan_computes_no_wheel_tags(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """gamma needs beta 2, which needs alpha>=2 over the foreign alpha 1.0: every pip
    change is refused and no wheel is read, yet the tags worked out beside the first
    plan's preview are kept, so the next plan imports no packaging.tags."""
    prefix = make_venv(tmp_path / "venv")
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    manifest = write_manifest(
        tmp_path / "manifest.yaml", {"e": {"prefix": prefix, "pip": ["gamma"]}},
        wheelhouse=wheelhouse,
    )  # fmt: skip
    state = tmp_path / "state"
    code, first, out = _plan(isolated, state, manifest)
    assert code == 3 and "refused" in out, out
    assert "packaging.tags" in first
    code, new, again = _plan(isolated, state, manifest)
    assert (code, again) == (3, out)
    assert sorted(set(new) & {"packaging.tags", "logging", "platform"}) == []


def test_a_pending_apply_imports_only_what_it_uses(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    prefix, manifest, state = _pending(tmp_path, wheelhouse, isolated)
    code, _, out = _plan(isolated, state, manifest)  # remembers the loaded manifest
    assert code == 0 and "+ install pip beta 1.0" in out, out
    code, new, out = _run(isolated, state, "apply", manifest)
    assert code == 0 and (prefix / SITE / "beta-1.0.dist-info").is_dir(), out
    assert "reconciler.apply.execute" in new and "reconciler.backends.process" in new
    assert sorted(set(new) & {*APPLY_UNUSED, *UNUSED_CLASSES}) == []


def test_a_locked_apply_imports_only_what_it_uses(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    """The restore after an image reset: the lock file is read, no resolver consulted."""
    server = StaticServer(build_simple_index(wheelhouse, tmp_path / "index")).start()
    try:
        prefix = make_venv(tmp_path / "venv")
        pristine = tmp_path / "pristine"
        shutil.copytree(prefix, pristine, symlinks=True)
        manifest = write_manifest(
            tmp_path / "team.yaml", {"e": {"prefix": prefix, "pip": ["beta"]}},
            defaults={"pip": {"index_url": f"{server.url}simple/"}},
        )  # fmt: skip
        state = tmp_path / "state"
        code, _, out = _run(isolated, state, "lock", manifest)
        assert code == 0 and "Wrote" in out, out
        code, _, out = _run(isolated, state, "apply", manifest)
        assert code == 0, out
        shutil.rmtree(prefix)  # the image reset: the additions are gone, the state dir kept
        shutil.copytree(pristine, prefix, symlinks=True)
        code, new, out = _run(isolated, state, "apply", manifest)
        assert code == 0 and "(from team.lock)" in out, out
        assert (prefix / SITE / "beta-2.0.dist-info").is_dir(), out
    finally:
        server.stop()
    assert "reconciler.lockfile.resolver" in new and "reconciler.lockfile.fresh" in new
    assert "is stale" not in out
    locked_unused = set(APPLY_UNUSED) - {
        "reconciler.lockfile.model",
        "reconciler.lockfile.resolver",
    }
    # One environment, its wheels' RECORDs cached: no thread pool (concurrent.futures
    # imports logging), no wheel tags.
    locked_unused |= {"concurrent.futures", "logging", "packaging.tags"}
    assert sorted(set(new) & {*locked_unused, *UNUSED_CLASSES}) == []


def test_the_uv_found_beside_the_venv_is_the_one_find_uv_bin_finds() -> None:
    # A plan in a venv does not import the uv package (its finder loads sysconfig's data).
    from uv import find_uv_bin

    from reconciler.backends.pip_args import uv_in_venv

    assert sys.prefix != sys.base_prefix  # the tests run in the project's venv
    assert uv_in_venv() == find_uv_bin()


def test_the_digest_without_openssl_is_hashlibs() -> None:
    # The lock's managed digest moved off hashlib: committed lock files must stay fresh.
    for data in (b"", b"pip:alpha==1.0:", b"conda:numpy==2.0:py311_0\n" * 5000):
        assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_the_installer_failure_messages_compile_their_patterns_when_one_fails() -> None:
    # Every plan imports these modules; their failure patterns cost ~3 ms to compile.
    probe = (
        "import re, packaging.utils, reconciler.backends.pip_args, reconciler.backends.process, "
        "reconciler.manifest.model, reconciler.state.cache, reconciler.faults; "
        "before = len(re._cache); import reconciler.backends.pip_failures, "
        "reconciler.backends.pip_locked, reconciler.backends.pip, reconciler.backends.conda; "
        "print(len(re._cache) - before)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    assert out == "0\n"


def test_the_state_files_time_stamp_is_datetimes_iso_format() -> None:
    from datetime import datetime, timezone

    from reconciler.state.store import _now

    before = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = _now()
    after = datetime.now(timezone.utc).replace(microsecond=0)
    assert stamp in (before.isoformat(), after.isoformat())
