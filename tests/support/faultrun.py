"""Helpers for the process-level fault tests in ``tests/faults/``.

Each test runs ``python -m reconciler`` as a real process (:func:`run_cli`)
against a real environment: :func:`make_image` builds a hybrid conda + venv
prefix that stands for an image (conda ``pyfoo 1.0`` with its pip dist, plus pip
``alpha 1.0``), whose managed bytes (:func:`managed_hash`: every
``conda-meta/*.json`` and ``*.dist-info/RECORD``) must never change.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.state.store import StateStore
from tests.support.envs import make_conda_prefix, pip_install, tree_hash

REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "REPO",
    "Managed",
    "Run",
    "assert_clean_failure",
    "env_hash",
    "make_image",
    "proc_env",
    "run_cli",
    "site_packages",
    "state_documents",
    "write_manifest",
]


def proc_env(isolated: Mapping[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    """The ``isolated`` environment with this checkout importable and a uv cache of the
    test's own (a wheel cached by an earlier test would skip the faulty download)."""
    env = {**isolated, "PYTHONPATH": str(REPO), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    env.pop("RECONCILER_FAULT_POINT", None)
    env.update(extra)
    return env


@dataclass(frozen=True)
class Run:
    """A finished ``reconciler`` process."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


def run_cli(env: Mapping[str, str], state: Path, *args: str | Path, timeout: float = 120) -> Run:
    """``python -m reconciler --state-dir STATE ARGS...``, timed."""
    argv = [sys.executable, "-m", "reconciler", "--state-dir", str(state), *map(str, args)]
    start = time.monotonic()
    proc = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def make_image(path: Path, channel: Path, wheelhouse: Path) -> Path:
    """A hybrid conda + venv prefix: conda ``pyfoo 1.0`` (ships pip ``pyfoo``) and pip
    ``alpha 1.0``, as an image would hold them."""
    prefix = make_conda_prefix(path, channel, ["pyfoo ==1.0"], hybrid=True)
    pip_install(prefix, ["alpha==1.0"], wheelhouse)
    return prefix


def site_packages(prefix: Path) -> Path:
    """``<prefix>/lib/pythonX.Y/site-packages``."""
    return next((prefix / "lib").glob("python*/site-packages"))


class Managed:
    """The image's managed bytes: its conda-meta records and dist-info RECORD files,
    listed when the snapshot is taken and hashed again by :meth:`unchanged`."""

    def __init__(self, prefix: Path) -> None:
        records = sorted((prefix / "conda-meta").glob("*.json"))
        record_files = sorted(site_packages(prefix).glob("*.dist-info/RECORD"))
        assert records and record_files, prefix
        self.paths = [*records, *record_files]
        self.digest = tree_hash(*self.paths)

    def unchanged(self) -> bool:
        """True when every one of those files still exists with the same bytes and mode."""
        return all(p.is_file() for p in self.paths) and tree_hash(*self.paths) == self.digest


def env_hash(prefix: Path) -> str:
    """tree_hash of everything an install can change: site-packages, bin, conda-meta."""
    roots = [site_packages(prefix), prefix / "bin"]
    if (prefix / "conda-meta").is_dir():
        roots.append(prefix / "conda-meta")
    return tree_hash(*roots)


def write_manifest(
    path: Path,
    environments: Mapping[str, Mapping[str, Any]],
    *,
    pip: Mapping[str, Any] | None = None,
    channels: Sequence[str] = (),
    installer: str | None = None,
) -> Path:
    """A version 1 manifest (paths become strings)."""
    defaults: dict[str, Any] = {}
    if pip is not None:
        defaults["pip"] = dict(pip)
    if channels:
        defaults["channels"] = list(channels)
    if installer is not None:
        defaults["installer"] = installer
    document = {
        "version": 1,
        "defaults": defaults,
        "environments": {
            name: {k: str(v) if isinstance(v, Path) else v for k, v in body.items()}
            for name, body in environments.items()
        },
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def state_documents(state: Path, prefix: Path) -> dict[str, Any]:
    """Every JSON file of the environment's state dir, parsed (a torn file fails here)."""
    directory = StateStore(state).env_dir(prefix)
    docs: dict[str, Any] = {}
    if not directory.is_dir():
        return docs
    for path in sorted(directory.glob("*.json")):
        docs[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    leftovers = [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, f"temporary files left in {directory}: {leftovers}"
    return docs


def assert_clean_failure(run: Run, *needles: str) -> None:
    """Exit 1, a message containing every needle, and no traceback.

    The message is ``error: ...`` on stderr (the command stopped) or the progress
    line ``[<env>] failed: ...`` (an environment's transaction failed).
    """
    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output, run.output
    assert "internal error" not in run.output, run.output
    assert "error: " in run.stderr or "] failed: " in run.output, run.output
    for needle in needles:
        assert needle in run.output, (needle, run.output)
