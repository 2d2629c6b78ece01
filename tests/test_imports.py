"""What a pending ``plan`` imports (issue 13: "nothing compiled at import that the path
does not use").

Each module below costs milliseconds at import and serves only other paths: a lock
file, an HTML index page, hashing file contents, a write's time stamp, a kernelspec,
a full manifest load (the memo answers a repeated one), a conda solve. The plan runs
for real, in a fresh interpreter, on a real venv with a missing package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.envs import make_venv, pip_install
from tests.support.manifests import REPO, write_manifest

#: Not imported by a repeated plan of a pip-only manifest with no lock file and no kernel.
UNUSED = (
    "reconciler.lockfile.model", "reconciler.lockfile.resolver", "html.parser", "hashlib",
    "_hashlib", "datetime", "reconciler.state.kernels", "yaml", "jsonschema", "rattler",
    "networkx", "urllib.request",
)  # fmt: skip
PROBE = (
    "import sys; before = set(sys.modules); from reconciler.entry import main; "
    "code = main(sys.argv[1:]); new = sorted(set(sys.modules) - before); "
    "import json; print(json.dumps({'code': code, 'new': new}))"
)


def _plan(env: dict[str, str], state: Path, manifest: Path) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "--state-dir", str(state), "plan", str(manifest)],
        env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    out, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("{"), proc.stdout + proc.stderr
    result = json.loads(last)
    return result["code"], result["new"], out


def test_a_pending_plan_imports_only_what_it_uses(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    prefix = make_venv(tmp_path / "venv")
    pip_install(prefix, ["alpha==1.0"], wheelhouse, env=isolated)
    manifest = write_manifest(
        tmp_path / "manifest.yaml", {"e": {"prefix": prefix, "pip": ["alpha", "beta"]}},
        wheelhouse=wheelhouse,
    )  # fmt: skip
    state = tmp_path / "state"
    code, first, out = _plan(isolated, state, manifest)
    assert code == 0 and "+ install pip beta 1.0" in out, out
    assert "yaml" in first  # the first load parses the YAML (and remembers the model)
    code, new, again = _plan(isolated, state, manifest)
    assert (code, again) == (0, out)
    assert "reconciler.plan.planner" in new and "packaging.requirements" in new
    assert sorted(set(new) & set(UNUSED)) == []
    # With a lock file beside the manifest, the lock code loads (and says it is stale).
    manifest.with_suffix(".lock").write_text("{}\n")
    code, new, out = _plan(isolated, state, manifest)
    assert code == 1 and "reconciler.lockfile.model" in new, out
