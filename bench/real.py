"""The real-wheel part of ``python -m bench``: the real tier's stack as a venv and a conda prefix.

The fixture is the one of ``tests/real/`` (:mod:`tests.real.stack`): the 54
pinned PyPI distributions of the managed image, installed offline from the
tier's wheel cache (``$RECONCILER_REAL_WHEELS``, default
``~/.cache/reconciler-tests/real-wheels``; filled once from the index), as a
venv and as the hybrid conda prefix made from it. Both are cached under
``bench/.cache/real/`` keyed by the pins, the builder and the interpreter.

For each of the two prefixes, reconciler as a process against uv on the same
requirements (``--no-index --find-links`` the cache):

* no-op ``plan`` of 8 image packages vs ``uv pip install --dry-run`` of them;
* ``plan`` with 4 missing packages (12 installs) vs uv's dry run of the same;
* ``plan`` of those plus ``pytest==8.2.2``, whose pluggy>=1.5 is refused
  (pluggy is managed at 1.0.0), vs the same plan without the refusal;
* ``apply`` of the 4 missing packages vs ``uv pip install`` of them, each
  round on a fresh clone of the prefix: at an app restart (a copy of the state dir
  the first round's apply left, whose preview record starts the dry run at process
  start) and as the first apply of the manifest (a copy of the captured state dir).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from bench import fixture as fx
from bench.measure import Run

if TYPE_CHECKING:
    from bench.run import Bench

__all__ = ["CACHE", "ensure_real_fixture", "step"]

CACHE = fx.CACHE / "real"
#: Image packages a manifest declares (all satisfied: the no-op plan).
NOOP = (
    "numpy==1.26.4", "pandas>=2.2,<2.3", "scipy", "scikit-learn", "matplotlib", "requests",
    "ipykernel", "pyyaml",
)  # fmt: skip
#: Missing packages: 12 installs with their dependencies (extras included).
MISSING = ("tabulate==0.9.0", "jsonschema==4.22.0", "bleach[css]==6.1.0", "black")
#: A request whose dependency (pluggy>=1.5) the image's pluggy 1.0.0 refuses.
REFUSED = "pytest==8.2.2"


def _stamp() -> str:
    from tests.real import stack

    digest = hashlib.sha256()
    for path in (Path(stack.__file__), Path(stack.__file__).with_name("wheels.json")):
        digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:16]


def ensure_real_fixture(log: Callable[[str], object] = print) -> tuple[Path, Path, Path]:
    """(pinned wheels, venv, conda prefix): built once per stamp, read-only originals."""
    from tests.real.stack import build_image_venv, conda_from_venv, ensure_wheels, exact_wheels
    from tests.support.envs import isolated_env

    fetched = ensure_wheels()
    if fetched.fetched:
        log(f"real: downloaded {fetched.fetched} pinned wheels into {fetched.directory}")
    root = CACHE / _stamp()
    wheels, venv, conda = root / "wheels", root / "venv", root / "conda"
    if not (root / "done").is_file():
        log("real: building the image venv and conda prefix from the cached wheels ...")
        shutil.rmtree(CACHE, ignore_errors=True)
        root.mkdir(parents=True)
        exact_wheels(fetched.directory, wheels)  # only the pinned files: the find_links
        build_image_venv(venv, wheels, env=isolated_env(root / "uv-cache"))
        conda_from_venv(venv, conda)
        shutil.rmtree(root / "uv-cache", ignore_errors=True)
        (root / "done").touch()
    return wheels, venv, conda


def step(bench: Bench) -> Callable[[], None]:
    """The ``bench_real`` step of :func:`bench.run.main`."""

    def bench_real() -> None:
        wheels, venv, conda = ensure_real_fixture(log=lambda m: print(m, file=sys.stderr))
        for kind, original in (("venv", venv), ("conda", conda)):
            _RealBench(bench, wheels, original, kind).run()

    return bench_real


class _RealBench:
    """The four comparisons on one real prefix."""

    def __init__(self, bench: Bench, wheels: Path, original: Path, kind: str) -> None:
        self.bench, self.wheels, self.original, self.kind = bench, wheels, original, kind
        self.work = bench.work / f"real-{kind}"
        self.work.mkdir()
        self.prefix = self.work / "prefix"
        self.runs = bench.config.real_runs
        self.dry_missing = 0.0  # uv's dry run of the missing packages (the apply's floor)

    # -- inputs --

    def manifest(self, name: str, pip: tuple[str, ...]) -> Path:
        document = {
            "version": 1,
            "defaults": {
                "pip": {"no_index": True, "find_links": [str(self.wheels)]},
                "installer": "uv",
            },
            "environments": {"image": {"prefix": str(self.prefix), "pip": list(pip)}},
        }
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        (self.work / f"{name}.txt").write_text("\n".join(pip) + "\n")
        return path

    def uv(self, name: str, *, dry_run: bool) -> list[str]:
        argv = [self.bench.uv, "pip", "install", "--python", str(self.prefix / "bin" / "python")]
        argv += ["--no-index", "--find-links", str(self.wheels)]
        return [*argv, *(["--dry-run"] if dry_run else []), "-r", str(self.work / f"{name}.txt")]

    def fresh_prefix(self) -> None:
        from tests.real.stack import clone_env

        shutil.rmtree(self.prefix, ignore_errors=True)
        clone_env(self.original, self.prefix)

    def fresh_state(self, source: Path | None = None) -> Path:
        """A copy of ``source`` (``state0``: the baseline captured) as the state dir."""
        state = self.work / "state"
        shutil.rmtree(state, ignore_errors=True)
        shutil.copytree(source or self.work / "state0", state)
        # The no-op fast path does not remember a run whose inputs changed within its
        # clock slack (50 ms) before it started; a user's state files are never that
        # new, so the measured runs start after it.
        time.sleep(0.1)
        return state

    def run(self) -> None:
        b = self.bench
        self.fresh_prefix()
        noop = self.manifest("noop", NOOP)
        missing = self.manifest("missing", NOOP + MISSING)
        refused = self.manifest("refused", (*NOOP, *MISSING, REFUSED))
        capture = b.rec(self.work / "state0", "baseline", "capture", noop)
        b.run(capture, lambda r: r.returncode == 0, f"real {self.kind}: baseline capture")
        state = self.fresh_state()
        plans: dict[str, tuple[float, float]] = {}
        for name, manifest, code in (("noop", noop, 0), ("missing", missing, 0),
                                     ("refused", refused, 3)):  # fmt: skip
            plans[name] = self.compare_plan(name, b.rec(state, "plan", manifest), code)
        label = f"real {self.kind}"
        self.row(f"{label}: no-op plan", plans["noop"], "uv --dry-run", 1.5)
        self.row(f"{label}: plan, 4 missing", plans["missing"], "uv --dry-run", 2.5)
        start = b.python_start()
        dry = plans["missing"][1]
        b.floor_row("python + the dry run", start + dry, dry, 2.5)
        ours, _ = plans["refused"]
        without, _ = plans["missing"]
        self.row(f"{label}: plan with a refusal", (ours, without), "same plan without", 1.5)
        self.dry_missing = plans["missing"][1]
        self.compare_apply(missing)

    def compare_plan(self, name: str, argv: list[str], code: int) -> tuple[float, float]:
        b = self.bench
        ours = b.new_series(f"real {self.kind}: reconciler plan ({name})", argv)
        uv_argv = self.uv(name, dry_run=True)
        theirs = b.new_series(f"real {self.kind}: uv --dry-run ({name})", uv_argv)
        said = "Would make no changes" if name == "noop" else " + tabulate==0.9.0"
        for measured in b.rounds(self.runs):
            r = b.run(argv, lambda r: r.returncode == code, f"real {self.kind}: plan {name}")
            u = b.run(uv_argv, lambda r: r.returncode == 0 and said in r.stderr, f"uv {name}")
            (self.prefix / ".lock").unlink(missing_ok=True)
            if measured:
                ours.add(r.seconds, r.maxrss_kib)
                theirs.add(u.seconds, u.maxrss_kib)
        return ours.median, theirs.median

    def compare_apply(self, manifest: Path) -> None:
        """The apply at an app restart (the state dir the first round's apply left, the
        prefix reset: its preview record starts the dry run at once) and the first apply
        of the manifest (a copy of ``state0``), each against one uv install."""
        b = self.bench
        argv = b.rec(self.work / "state", "apply", manifest)
        restart = b.new_series(f"real {self.kind}: reconciler apply (4 missing), restart", argv)
        first = b.new_series(f"real {self.kind}: reconciler apply (4 missing), first", argv)
        uv_argv = self.uv("missing", dry_run=False)
        theirs = b.new_series(f"real {self.kind}: uv pip install (4 missing)", uv_argv)
        left = self.work / "state-restart"

        def installed(r: Run) -> bool:
            added = self.prefix / _site() / "tabulate-0.9.0.dist-info"
            return r.returncode == 0 and added.is_dir()

        for index, measured in enumerate(b.rounds(self.runs)):
            self.fresh_prefix()
            self.fresh_state()
            r = b.run(argv, installed, f"real {self.kind}: first apply")
            if index == 0:
                shutil.rmtree(left, ignore_errors=True)
                shutil.copytree(self.work / "state", left)
            self.fresh_prefix()
            self.fresh_state(left)
            s = b.run(argv, installed, f"real {self.kind}: apply at a restart")
            self.fresh_prefix()
            u = b.run(uv_argv, installed, f"real {self.kind}: uv install")
            if measured:
                first.add(r.seconds, r.maxrss_kib)
                restart.add(s.seconds, s.maxrss_kib)
                theirs.add(u.seconds, u.maxrss_kib)
        self.row(f"real {self.kind}: apply, 4 missing, app restart",
                 (restart.median, theirs.median), "uv pip install", 1.5)  # fmt: skip
        self.row(f"real {self.kind}: apply, 4 missing, first apply", (first.median, theirs.median),
                 "uv pip install", 1.5)  # fmt: skip
        # A safe apply previews before it installs: a dry run, then the install.
        floor = b.python_start() + self.dry_missing + theirs.median
        b.floor_row("python + the dry run + the install", floor, theirs.median, 1.5)

    def row(self, what: str, times: tuple[float, float], other: str, target: float) -> None:
        from bench.run import Row, _verdict

        ours, theirs = times
        ratio = ours / theirs if theirs else float("inf")
        self.bench.rows.append(
            Row(what, f"{ours:.3f} s", f"{other} {theirs:.3f} s", f"{ratio:.1f}x",
                f"<= {target}x", _verdict(ratio <= target))
        )  # fmt: skip


def _site() -> str:
    from tests.real.stack import SITE

    return SITE
