"""Build a local demo "image" and run ``reconciler plan`` on it (the README quick start).

Everything is made here, offline: a wheelhouse and a conda channel of tiny
packages, a prefix that is both a venv and a conda environment standing in for
a SageMaker image, its baseline, and a manifest that adds to it. Run from the
repository root::

    python -m tests.support.demo [DIR]      # default DIR: .demo
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.conda import build_channel
from tests.support.envs import isolated_env, make_conda_prefix, pip_install
from tests.support.wheels import build_wheelhouse

MANIFEST = """\
# A demo manifest (written by tests/support/demo.py). The "image" environment
# stands in for a SageMaker Distribution base env: its packages are managed.
version: 1
protect: [pyfoo]
defaults:
  channels: [{channel}]
  pip: {{no_index: true, find_links: [{wheelhouse}]}}
all:
  pip: [delta]                   # added to every environment
environments:
  image:
    prefix: {image}
    conda: [condaonly]           # a conda addition: allowed
    pip: ["beta>=1", gamma]      # gamma needs beta>=2, which needs alpha>=2: alpha is managed
  tools:
    prefix: {tools}
    create: {{venv: {python}}}
    pip: ["alpha>=2"]
"""


def build(root: Path) -> Path:
    """Create the demo under ``root``; returns the manifest path."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    wheelhouse = build_wheelhouse(root / "wheelhouse")
    channel = build_channel(root / "channel")
    image = make_conda_prefix(root / "image", channel, ["pyfoo ==1.0", "libfoo ==1.0"], hybrid=True)
    pip_install(image, ["alpha==1.0", "beta==1.0"], wheelhouse, env=isolated_env())
    manifest = root / "manifest.yaml"
    manifest.write_text(
        MANIFEST.format(
            channel=channel.resolve().as_uri(),
            wheelhouse=wheelhouse.resolve(),
            image=image.resolve(),
            tools=(root / "tools").resolve(),
            python=sys.executable,
        ),
        encoding="utf-8",
    )
    return manifest


def main(argv: list[str]) -> int:
    """Build the demo, capture the image's baseline, print the plan."""
    root = Path(argv[0] if argv else ".demo").resolve()
    print(f"building a demo image environment and repositories under {root} ...")
    manifest = build(root)
    env = {**isolated_env(), "RECONCILER_STATE_DIR": str(root / "state")}
    reconciler = [sys.executable, "-m", "reconciler"]
    subprocess.run([*reconciler, "baseline", "capture", str(manifest)], env=env, check=True)
    print(f"\n$ reconciler plan {os.path.relpath(manifest)}")
    code = subprocess.run([*reconciler, "plan", str(manifest)], env=env, check=False).returncode
    print(
        f"\n(exit code {code}: 3 means the plan refuses a change to a managed package, so "
        "apply would change nothing; remove 'gamma' from the manifest to get an applicable plan)"
    )
    return 0 if code in (0, 3) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
