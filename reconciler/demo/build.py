"""Build the demo: repositories, an "image" environment and a manifest (no network).

The "image" prefix is a venv with conda records in ``conda-meta/`` (noarch
python packages land in its ``site-packages``), holding conda ``pyfoo`` and
``libfoo`` and pip ``alpha 1.0`` and ``beta 1.0``: the managed set once its
baseline is captured. The manifest adds a conda package and pip packages to
it, one of which (``gamma``) needs ``beta>=2`` and so ``alpha>=2``: refused,
because ``alpha`` is managed; and it creates a ``tools`` venv.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from reconciler.demo.conda import build_channel, rattler_available
from reconciler.demo.envs import isolated_env, make_conda_prefix, pip_install
from reconciler.demo.wheels import build_wheelhouse
from reconciler.errors import ReconcilerError
from reconciler.values import value

__all__ = ["MANIFEST", "Demo", "build_demo", "intro", "next_steps", "shown", "tool"]

MANIFEST = """\
# The demo manifest (written by `reconciler demo`). The "image" environment stands
# in for a SageMaker Distribution base env: its packages are managed.
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


@value
class Demo:
    """Where the demo's parts are (all absolute)."""

    root: Path
    manifest: Path
    state_dir: Path
    image: Path
    tools: Path

    @property
    def plan_command(self) -> str:
        """The ``plan`` command line the demo runs, as the user would type it."""
        return f"{tool()} plan {shown(self.manifest)}"


def shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def tool() -> str:
    """How to run this reconciler: its console script beside the interpreter, else ``-m``."""
    script = Path(sys.executable).parent / "reconciler"
    return shown(script) if script.is_file() else f"{sys.executable} -m reconciler"


def intro(root: Path) -> str:
    """What the demo says before building."""
    return (
        f"Building the demo under {shown(root)}: a wheelhouse and a conda channel of tiny "
        'packages, an "image" environment (a venv that is also a conda environment, standing '
        "in for /opt/conda) and a manifest that adds to it ..."
    )


def next_steps(demo: Demo, *, refused: bool) -> str:
    """What the demo says after its plan: the exit code, then what to try, with full paths."""
    why = ": a change to a managed package is refused, so apply would change nothing"
    run, manifest = tool(), shown(demo.manifest)
    return (
        f"(exit code {3 if refused else 0}{why if refused else ''})\n\n"
        f"Try next. The demo keeps its state in {shown(demo.state_dir)}, not in "
        "~/.local/state/reconciler, so point RECONCILER_STATE_DIR (or --state-dir) at it:\n"
        f"  export RECONCILER_STATE_DIR={demo.state_dir}\n"
        f"  {run} plan {manifest} --json       # the same plan as JSON\n"
        f"  {run} drift {manifest}             # how the environments differ from it\n"
        f"  {run} baseline show {manifest}     # the image's managed packages\n"
        f"Then delete 'gamma' from {manifest} and apply what is left:\n"
        f"  {run} apply {manifest}"
    )


def build_demo(root: Path, python: str = sys.executable) -> Demo:
    """(Re)create the demo under ``root``; ``python`` makes the venvs. Nothing outside
    ``root`` is written, and no installer reads the machine's pip or uv configuration.
    ``root`` must be new, empty or an earlier demo (it is replaced)."""
    if not rattler_available():
        raise ReconcilerError(
            "the demo needs py-rattler for its conda side, and it is not installed",
            hint="py-rattler needs Python >= 3.10: install reconciler with a newer Python",
        )
    root = Path(root).resolve()
    try:
        return _build(root, python)
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or [""]
        raise ReconcilerError(
            f"building the demo under {root} failed: {exc.cmd[0]} exited {exc.returncode}: "
            f"{output[0]}",
            hint="run again with -v, or report it",
        ) from exc


def _is_demo(root: Path) -> bool:
    """Whether ``root`` is missing, empty, or a demo an earlier run built (safe to replace)."""
    if not root.exists():
        return True
    if not root.is_dir():
        return False
    if not any(root.iterdir()):
        return True
    try:
        head = (root / "manifest.yaml").read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        return False
    return any(mark in head for mark in _MARKS)


#: The first line of the manifest of a demo this or an older version built.
_MARKS = ("(written by `reconciler demo`)", "(written by tests/support/demo.py)")


def _build(root: Path, python: str) -> Demo:
    if not _is_demo(root):
        raise ReconcilerError(
            f"{root} exists and is not a demo directory; nothing was changed",
            hint="choose a new or empty directory: reconciler demo DIR",
        )
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
            channel=channel.as_uri(),
            wheelhouse=wheelhouse,
            image=image,
            tools=root / "tools",
            python=python,
        ),
        encoding="utf-8",
    )
    return Demo(root, manifest, root / "state", image, root / "tools")
