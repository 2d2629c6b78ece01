"""Small helpers for tests that drive the CLI: manifests for real prefixes, CLI runs, dists.

:func:`write_manifest` writes a ``version: 1`` manifest whose pip side is
offline (``no_index`` + the test wheelhouse) and whose conda channel is the
local test channel. :func:`run_cli` runs ``reconciler.cli.main`` in-process
and returns the exit code with captured stdout and stderr.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

#: ``lib/pythonX.Y/site-packages`` of environments made with the running interpreter.
SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
#: The repository root (``PYTHONPATH`` for subprocess runs of ``python -m reconciler``).
REPO = Path(__file__).resolve().parents[2]


def write_manifest(
    path: Path,
    environments: Mapping[str, Mapping[str, Any]],
    *,
    wheelhouse: Path | None = None,
    channel: Path | None = None,
    **top: Any,
) -> Path:
    """Write a manifest with ``environments`` (name -> body with ``prefix``) to ``path``.

    ``wheelhouse`` makes the pip side offline (``no_index`` + ``find_links``);
    ``channel`` becomes ``defaults.channels``. Other keyword arguments are
    top-level keys (``protect``, ``all``).
    """
    defaults: dict[str, Any] = {}
    if wheelhouse is not None:
        defaults["pip"] = {"no_index": True, "find_links": [str(wheelhouse)]}
    if channel is not None:
        defaults["channels"] = [channel.resolve().as_uri()]
    document: dict[str, Any] = {"version": 1, **top}
    if defaults:
        document["defaults"] = defaults
    document["environments"] = {
        name: {k: str(v) if isinstance(v, Path) else v for k, v in body.items()}
        for name, body in environments.items()
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """``reconciler.cli.main(argv)`` in-process: (exit code, stdout, stderr)."""
    from reconciler.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_dist_info(
    site_packages: Path,
    name: str,
    version: str,
    requires: Sequence[str] = (),
    *,
    directory: str | None = None,
    installer: str | None = None,
    extra_headers: str = "",
    body: str = "",
) -> Path:
    """Write a minimal ``*.dist-info`` (METADATA, optional INSTALLER) as an installer would."""
    info = site_packages / (directory or f"{name.replace('-', '_')}-{version}.dist-info")
    info.mkdir(parents=True, exist_ok=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    text = "\n".join(lines) + "\n" + extra_headers
    if body:
        text += "\n" + body
    (info / "METADATA").write_text(text, encoding="utf-8")
    if installer is not None:
        (info / "INSTALLER").write_text(installer + "\n", encoding="utf-8")
    return info


_LOAD_PROBE = (
    "import sys\n"
    "from reconciler.errors import ManifestError\n"
    "from reconciler.manifest import load_manifest\n"
    "try:\n"
    "    load_manifest(sys.argv[1], check_prefixes=False)\n"
    "    print('loaded')\n"
    "except ManifestError as error:\n"
    "    print(error)\n"
    "print(sys.argv[2] in sys.modules)\n"
)


def load_in_a_new_process(path: Path, module: str) -> list[str]:
    """Load the manifest at ``path`` in a new interpreter: its output lines, ``loaded`` or
    the error, then whether ``module`` was imported (``True``/``False``)."""
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_PROBE, str(path), module],
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()
