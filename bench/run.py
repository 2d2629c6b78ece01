"""Benchmark of issues 5 and 13: reconciler against uv and pip on a SageMaker-sized image.

``python -m bench`` (from the repository root) prints the machine, the fixture,
then one table of medians with ratios and targets (PASS/FAIL), the raw series
and how each measurement was made. ``--quick`` is a small version (fewer runs, 10
scale environments instead of 50); ``--profile`` adds ``-X importtime`` and
cProfile summaries of the reconciler command behind each FAIL.

What is compared (see :mod:`bench.fixture` for the environments):

1. no-op ``reconciler apply`` over 3 environments vs the sum of
   ``uv pip install -r`` no-ops and the sum of ``pip install -r`` no-ops on each,
   also as the lifecycle script runs it at every app start (``--background --wait
   60``: its parent, and the detached apply when it starts one);
2. ``reconciler plan`` of 5 missing packages on the image vs ``uv pip install
   --dry-run`` of the same requirements (ratio): repeated (replayed once its dry run
   answers the same), repeated without the fast path's stamps (planned in full, its
   dry run started at process start), the first plan (no preview record) and the
   plan of a manifest just edited; a no-op ``plan`` of the image vs
   uv's no-op dry run, and the import time of the pending plan (``-X importtime``:
   the modules beyond ``python -c pass``, each at its minimum over the runs);
3. ``reconciler apply`` of 5 packages into each of 3 environments vs three
   sequential ``uv pip install`` (and, for information, the slowest single one):
   at an app restart (the state directory the first round's apply left, the
   environments as before it: a Studio app's home is kept, its image reset), the
   same as the lifecycle script runs it (``--background --wait 60``), and the first
   apply of the manifest, all against the target; every repetition starts from
   the same environments (the 5 packages uninstalled with ``uv pip uninstall``,
   the directory listing checked against the original) and a fresh copy of the
   state directory;
4. ``reconciler plan`` of 50 environments x 1,000 dist-infos: the planner warm
   (its no-op stamps removed before each run), on an empty state dir, answered by
   the no-op fast path, and the child's peak RSS (``wait4`` ru_maxrss);
5. ``reconciler --version`` vs ``python -c pass``.

reconciler runs as users run it: a subprocess ``python -m reconciler`` with
``PYTHONPATH`` at the repository root (or the ``reconciler`` console script next
to the interpreter when it is an install of this checkout), bytecode caches on.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench import fixture as fx
from bench import real
from bench.measure import CheckFailed, Run, Series, isolated_env, run_timed, run_together
from reconciler.backends import speculative
from reconciler.fastpath import CACHE as NOOP_STAMPS

REPO = fx.REPO
MIB = 1024 * 1024
#: Where an apply keeps the row heads of the RECORDs it read (reconciler/apply/execute.py).
RECORD_HEADS = Path("cache") / "record-heads.json"
#: What the lifecycle script adds to its apply at every app start (``lifecycle.py``).
LIFECYCLE = ("--background", "--wait", "60")

# -- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    quick: bool
    warmup: int
    runs: int
    pip_runs: int
    version_runs: int
    scale_envs: int
    profile: bool
    keep: bool
    #: Of the real-wheel rows (bench.real): one with --quick unless --runs says more.
    real_runs: int = 7

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        if args.quick:
            config = cls(True, 1, 3, 1, 5, 10, args.profile, args.keep, 1)
        else:
            config = cls(False, 1, 7, 3, 15, 50, args.profile, args.keep, 7)
        if args.runs:
            config = Config(
                config.quick, config.warmup, args.runs, min(config.pip_runs, args.runs),
                max(config.version_runs, args.runs), config.scale_envs, config.profile,
                config.keep, args.runs,
            )  # fmt: skip
        return config


# -- tools -------------------------------------------------------------------------------


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except Exception:
        found = shutil.which("uv")
        if found is None:
            raise SystemExit(
                "uv not found: install the `uv` package into this interpreter"
            ) from None
        return found


def reconciler_command() -> tuple[list[str], str]:
    """The command users run: the console script when it is this checkout, else ``-m``."""
    script = Path(sys.executable).parent / "reconciler"
    if script.is_file():
        try:
            from importlib.metadata import distribution

            origin = Path(str(distribution("env-reconciler").locate_file("reconciler")))
            direct = distribution("env-reconciler").read_text("direct_url.json") or ""
            if origin.resolve() == (REPO / "reconciler").resolve() or str(REPO) in direct:
                return [str(script)], f"{script} (console script of this checkout)"
        except Exception:
            pass
    return [sys.executable, "-m", "reconciler"], (
        f"{sys.executable} -m reconciler, PYTHONPATH={REPO}"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "reconciler"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return head + (" + uncommitted changes in reconciler/" if dirty else "")


# -- the benchmark -----------------------------------------------------------------------


@dataclass
class Row:
    """One comparison of the table."""

    measurement: str
    ours: str
    other: str
    ratio: str
    target: str
    verdict: str  # PASS | FAIL | info
    profile: Callable[[], None] | None = None


@dataclass
class Bench:
    config: Config
    work: Path
    fixture: fx.Fixture
    uv: str
    reconciler: list[str]
    env: dict[str, str] = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prefixes: dict[str, Path] = field(default_factory=dict)
    listings: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)
    _has_pip: dict[Path, bool] = field(default_factory=dict)
    _start: Series | None = None

    # -- commands --

    def rec(self, state: Path | None, *args: str | Path) -> list[str]:
        head = [*self.reconciler]
        if state is not None:
            head += ["--state-dir", str(state)]
        return [*head, *(str(a) for a in args)]

    def uv_install(self, prefix: Path, reqs: Path, *, dry_run: bool = False) -> list[str]:
        argv = [self.uv, "pip", "install", "--python", str(prefix / "bin" / "python")]
        argv += ["--no-index", "--find-links", str(self.fixture.wheelhouse)]
        argv += ["--dry-run"] if dry_run else []
        return [*argv, "-r", str(reqs)]

    def pip_install(self, prefix: Path, reqs: Path) -> list[str]:
        python = prefix / "bin" / "python"
        tail = ["install", "--no-index", "--find-links", str(self.fixture.wheelhouse)]
        tail += ["-r", str(reqs)]
        if self.has_pip(prefix):
            return [str(python), "-m", "pip", *tail]
        return [sys.executable, "-m", "pip", "--python", str(python), *tail]

    def has_pip(self, prefix: Path) -> bool:
        """The environment's interpreter can import pip (a dist-info alone is not enough)."""
        if prefix not in self._has_pip:
            proc = subprocess.run(
                [str(prefix / "bin" / "python"), "-c", "import pip"],
                env=self.env, capture_output=True, check=False,
            )  # fmt: skip
            self._has_pip[prefix] = proc.returncode == 0
        return self._has_pip[prefix]

    def run(self, argv: Sequence[str], check: Callable[[Run], bool], what: str) -> Run:
        result = run_timed(argv, self.env, cwd=self.work)
        if not check(result):
            raise CheckFailed(f"{what}: unexpected result\n{result.describe()}")
        return result

    def python_start(self) -> float:
        """The median start of ``python -c pass`` (measured once): what any Python front end
        pays before it can run uv at all, for the floors beside the targets."""
        if self._start is None:
            argv = [sys.executable, "-c", "pass"]
            self._start = self.new_series("python -c pass (for the floors)", argv)
            for measured in self.rounds(self.config.version_runs):
                p = self.run(argv, lambda r: r.returncode == 0, "python -c pass")
                if measured:
                    self._start.add(p.seconds, p.maxrss_kib)
        return self._start.median

    def floor_row(self, what: str, floor: float, other: float, target: float) -> None:
        """An info row: the least a command can take that starts Python and runs the uv
        processes it must (``floor`` seconds), as a ratio to the competitor's ``other``."""
        ratio = f"{floor / other:.2f}x"
        row = Row(f"  floor: {what}", "", f"{floor:.3f} s", ratio, f"(target {target}x)", "info")
        self.rows.append(row)

    def new_series(self, label: str, command: Sequence[str]) -> Series:
        series = Series(label, self._short(" ".join(command)))
        self.series.append(series)
        return series

    def _short(self, text: str) -> str:
        return text.replace(str(self.work) + "/", "$W/").replace(str(fx.CACHE) + "/", "$C/")

    # -- environments --

    def _listing(self, prefix: Path) -> tuple[set[str], set[str]]:
        return set(os.listdir(prefix)), set(os.listdir(fx.site_packages(prefix)))

    def clean_lock(self, prefix: Path) -> None:
        """uv leaves an empty ``.lock`` in the environment (even for a dry run)."""
        if ".lock" not in self.listings[prefix.name][0]:
            (prefix / ".lock").unlink(missing_ok=True)

    def restore(self, prefix: Path) -> None:
        """Uninstall the new packages (uv), and check the environment lists as it started."""
        names = [name for name, _ in fx.NEW_PACKAGES]
        argv = [self.uv, "pip", "uninstall", "--python", str(prefix / "bin" / "python"), *names]
        proc = run_timed(argv, self.env, cwd=self.work)
        if proc.returncode != 0:
            raise CheckFailed(f"restoring {prefix}\n{proc.describe()}")
        self.clean_lock(prefix)
        if self._listing(prefix) != self.listings[prefix.name]:
            top, site = self._listing(prefix)
            raise CheckFailed(
                f"{prefix} does not list as it started: top {top ^ self.listings[prefix.name][0]}"
                f", site-packages {site ^ self.listings[prefix.name][1]}"
            )

    def restore_all(self) -> None:
        for prefix in self.prefixes.values():
            self.restore(prefix)

    def has_new_packages(self, prefix: Path) -> bool:
        site = fx.site_packages(prefix)
        return all(
            (site / f"{n.replace('-', '_')}-1.0.dist-info").is_dir() for n, _ in fx.NEW_PACKAGES
        )

    # -- setup --

    def setup(self, prefixes: bool = True) -> None:
        """The children's environment; with ``prefixes``, the per-run copies of the
        fixture's environments with captured baselines (every step but scale and start-up)."""
        home = self.work / "home"
        home.mkdir()
        self.env = isolated_env(home, self.work / "uv-cache", REPO)
        if not prefixes:
            return
        for name, original in self.fixture.environments.items():
            self.prefixes[name] = fx.link_copy(original, self.work / "envs" / name)
            (self.prefixes[name] / ".lock").unlink(missing_ok=True)
            self.listings[name] = self._listing(self.prefixes[name])
        self.write_inputs()
        state0 = self.work / "state0"
        capture = self.rec(state0, "baseline", "capture", self.work / "missing.yaml")
        self.run(capture, lambda r: r.returncode == 0, "baseline capture")
        warm = self.rec(state0, "plan", self.work / "noop.yaml")
        self.run(warm, lambda r: r.returncode == 0, "warm-up plan")

    def write_inputs(self) -> None:
        wheelhouse = str(self.fixture.wheelhouse)
        for kind in ("noop", "missing"):
            environments = {}
            for name, prefix in self.prefixes.items():
                declared = self.fixture.declared[name]
                reqs = [d.pip_requirement for d in declared]
                body: dict[str, object] = {"prefix": str(prefix)}
                conda = [d.spec for d in declared if d.manager == "conda"]
                if conda:
                    body["conda"] = conda
                body["pip"] = [d.spec for d in declared if d.manager == "pip"]
                if kind == "missing":
                    new = [f"{n}>=1" for n, _ in fx.NEW_PACKAGES]
                    reqs += new
                    body["pip"] = [*body["pip"], *new]  # type: ignore[misc]
                environments[name] = body
                (self.work / f"{kind}-{name}.txt").write_text("\n".join(reqs) + "\n")
            document = {
                "version": 1,
                "protect": ["sagemaker*"],
                "defaults": {
                    "pip": {"no_index": True, "find_links": [wheelhouse]},
                    "installer": "uv",
                },
                "environments": environments,
            }
            (self.work / f"{kind}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def fresh_state(self, name: str) -> Path:
        dest = self.work / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(self.work / "state0", dest)
        return dest

    def rounds(self, runs: int | None = None) -> Iterator[bool]:
        """Yields ``measured`` for the warm-up rounds (False) and the runs (True)."""
        for i in range(self.config.warmup + (self.config.runs if runs is None else runs)):
            yield i >= self.config.warmup

    # -- 1. no-op apply --

    def bench_noop(self) -> None:
        state = self.fresh_state("state-noop")
        before = fx.snapshot(state)
        manifest = self.work / "noop.yaml"
        rec_argv = self.rec(state, "apply", manifest)
        rec = self.new_series("reconciler apply (no-op, 3 envs)", rec_argv)
        life_argv = [*rec_argv, *LIFECYCLE]
        life = self.new_series("reconciler apply --background (no-op, 3 envs)", life_argv)
        uv_each, pip_each = {}, {}
        for n, prefix in self.prefixes.items():
            uv_argv = self.uv_install(prefix, self._reqs("noop", n))
            uv_each[n] = self.new_series(f"uv pip install no-op: {n}", uv_argv)
        for n, prefix in self.prefixes.items():
            pip_argv = self.pip_install(prefix, self._reqs("noop", n))
            pip_each[n] = self.new_series(f"pip install no-op: {n}", pip_argv)
        uv_sum = Series("uv no-op sum")
        pip_sum = Series("pip no-op sum")
        warm = before
        for i, measured in enumerate(self.rounds()):
            if i == self.config.warmup:
                warm = fx.snapshot(state)
            r = self.run(
                rec_argv,
                lambda r: r.returncode == 0 and r.stdout.startswith("No changes"),
                "no-op apply",
            )
            b = self.run(
                life_argv,
                lambda r: r.returncode == 0 and r.stdout.startswith("No changes"),
                "no-op lifecycle apply",
            )
            if measured:
                rec.add(r.seconds, r.maxrss_kib)
                life.add(b.seconds, b.maxrss_kib)
            total = 0.0
            for name, prefix in self.prefixes.items():
                u = self.run(
                    self.uv_install(prefix, self._reqs("noop", name)),
                    _uv_noop,
                    "uv no-op",
                )
                self.clean_lock(prefix)
                total += u.seconds
                if measured:
                    uv_each[name].add(u.seconds, u.maxrss_kib)
            if measured:
                uv_sum.add(total)
            if i < self.config.warmup + self.config.pip_runs:
                total = 0.0
                for name, prefix in self.prefixes.items():
                    q = self.run(
                        self.pip_install(prefix, self._reqs("noop", name)),
                        lambda r: (
                            r.returncode == 0
                            and "already satisfied" in r.stdout
                            and "Successfully installed" not in r.stdout
                        ),
                        "pip no-op",
                    )
                    total += q.seconds
                    if measured:
                        pip_each[name].add(q.seconds, q.maxrss_kib)
                if measured:
                    pip_sum.add(total)
        first = _diff(before, warm)
        wrote = _diff(warm, fx.snapshot(state))
        changed = [n for n, e in self.prefixes.items() if self._listing(e) != self.listings[n]]
        self.notes.append(
            "no-op apply: the measured runs wrote "
            + (f"to the state dir: {wrote}" if wrote else "nothing to the state dir")
            + (f"; the first (warm-up) one created/changed {first}" if first else "")
            + "; environments "
            + (f"CHANGED: {changed}" if changed else "unchanged")
        )
        ratio = rec.median / uv_sum.median
        speedup = pip_sum.median / rec.median
        self.rows.append(
            Row(
                "no-op apply, 3 envs x ~30 pkgs",
                f"{rec.median:.3f} s",
                f"uv sum {uv_sum.median:.3f} s",
                f"{ratio:.2f}x",
                "<= 1.0x uv sum",
                _verdict(ratio <= 1.0),
                self._profile_cmd(rec_argv, None),
            )
        )
        self.rows.append(
            Row(
                "  the lifecycle script's apply --background --wait",
                f"{life.median:.3f} s",
                f"uv sum {uv_sum.median:.3f} s",
                f"{life.median / uv_sum.median:.2f}x",
                "<= 1.0x uv sum",
                _verdict(life.median / uv_sum.median <= 1.0),
            )
        )
        self.rows.append(
            Row(
                "",
                "",
                f"pip sum {pip_sum.median:.3f} s",
                f"{speedup:.1f}x faster",
                ">= 50x faster than pip",
                _verdict(speedup >= 50),
                self._profile_cmd(rec_argv, None),
            )
        )
        self.series += [uv_sum, pip_sum]

    def _reqs(self, kind: str, name: str) -> Path:
        return self.work / f"{kind}-{name}.txt"

    # -- 2. plan overhead --

    def bench_plan(self) -> None:
        state = self.fresh_state("state-plan")
        image = self.prefixes["image"]
        rec_argv = self.rec(state, "plan", self.work / "missing.yaml", "--env", "image")
        uv_argv = self.uv_install(image, self._reqs("missing", "image"), dry_run=True)
        rec = self.new_series("reconciler plan (5 missing, image)", rec_argv)
        bare_state = self.work / "state-plan-bare"
        bare_argv = self.rec(bare_state, *rec_argv[len(self.rec(state)) :])
        bare = self.new_series("reconciler plan (5 missing, image, no preview record)", bare_argv)
        # The repeated plan the replay does not answer (one that read an index, or asked
        # uv what is newest): the same state dir without the fast path's stamps.
        full_state = self.work / "state-plan-full"
        full_argv = self.rec(full_state, *rec_argv[len(self.rec(state)) :])
        full = self.new_series(
            "reconciler plan (5 missing, image, repeated, not replayed)", full_argv
        )
        # The plan of a pull request that changes the manifest: bytes new to the validation
        # memo (cache/manifests.json) as well as no preview record.
        edited_manifest = self.work / "edited.yaml"
        edited_argv = self.rec(bare_state, "plan", edited_manifest, "--env", "image")
        edited = self.new_series(
            "reconciler plan (5 missing, image, manifest just edited, no preview record)",
            edited_argv,
        )
        # The same pull request on a machine that planned the manifest before it: a
        # requirement changed (bytes new to the memo), the state dir as that plan left it.
        changed_state = self.work / "state-plan-changed"
        changed_manifest = self.work / "changed.yaml"
        changed_argv = self.rec(changed_state, "plan", changed_manifest, "--env", "image")
        changed = self.new_series(
            "reconciler plan (5 missing, image, a requirement just changed, after a plan of "
            "the manifest before)",
            changed_argv,
        )
        uv = self.new_series("uv pip install --dry-run (image)", uv_argv)
        names = [n for n, _ in fx.NEW_PACKAGES]

        def planned(r: Run) -> bool:
            return r.returncode == 0 and all(f"install pip {n} 1.0" in r.stdout for n in names)

        def bare_copy() -> None:
            """``state`` as the bare state dir: the same, without the preview record."""
            shutil.rmtree(bare_state, ignore_errors=True)
            shutil.copytree(state, bare_state)
            (bare_state / speculative.RECORD).unlink(missing_ok=True)

        def full_copy() -> None:
            """``state`` without the fast path's stamps (the preview record kept)."""
            shutil.rmtree(full_state, ignore_errors=True)
            shutil.copytree(state, full_state)
            (full_state / NOOP_STAMPS).unlink(missing_ok=True)

        missing_text = (self.work / "missing.yaml").read_text()
        for i, measured in enumerate(self.rounds()):
            # Repeated plans: the warm-up round records the preview the next ones start at
            # process start (reconciler/backends/speculative.py) and the plan they replay
            # once it answers the same (reconciler/entry.py).
            r = self.run(rec_argv, planned, "plan")
            self.clean_lock(image)
            full_copy()
            f = self.run(full_argv, planned, "repeated plan, not replayed")
            self.clean_lock(image)
            # The same plan from a copy of that state dir without the record: the first
            # plan of this manifest (or of this selection, or after the image changed).
            bare_copy()
            b = self.run(bare_argv, planned, "plan without a preview record")
            self.clean_lock(image)
            bare_copy()
            edited_manifest.write_text(f"{missing_text}# edit {i}\n")
            e = self.run(edited_argv, planned, "plan of a manifest just edited")
            self.clean_lock(image)
            shutil.rmtree(changed_state, ignore_errors=True)
            shutil.copytree(state, changed_state)
            requirement = "- addon-a>=1\n"
            if requirement not in missing_text:
                raise CheckFailed(f"missing.yaml has no {requirement!r}")
            changed_manifest.write_text(
                missing_text.replace(requirement, f"- addon-a>=0.{i + 1}\n") + f"# edit {i}\n"
            )
            c = self.run(changed_argv, planned, "plan of a manifest with a requirement changed")
            self.clean_lock(image)
            u = self.run(
                uv_argv,
                lambda r: r.returncode == 0 and all(f"+ {n}==1.0" in r.stderr for n in names),
                "uv dry run",
            )
            self.clean_lock(image)
            if measured:
                rec.add(r.seconds, r.maxrss_kib)
                full.add(f.seconds, f.maxrss_kib)
                bare.add(b.seconds, b.maxrss_kib)
                edited.add(e.seconds, e.maxrss_kib)
                changed.add(c.seconds, c.maxrss_kib)
                uv.add(u.seconds, u.maxrss_kib)
        if not (state / speculative.RECORD).is_file():
            raise CheckFailed("the repeated plan recorded no preview")
        for label, series, argv in (
            ("plan, 5 missing (image), repeated (replayed)", rec, rec_argv),
            ("  the same, repeated, not replayed (planned in full)", full, full_argv),
            ("  the same, first plan (no preview record)", bare, bare_argv),
            ("  the same, manifest just edited (no memo, no record)", edited, edited_argv),
            ("  the same, a requirement changed (the plan before it kept)", changed, changed_argv),
        ):
            ratio = series.median / uv.median
            self.rows.append(
                Row(
                    label,
                    f"{series.median:.3f} s",
                    f"uv --dry-run {uv.median:.3f} s",
                    f"{ratio:.2f}x ({series.median - uv.median:+.3f} s)",
                    "<= 2.5x uv --dry-run",
                    _verdict(ratio <= 2.5),
                    self._profile_cmd(argv, None),
                )
            )
        self.floor_row(
            "python start + the dry run", self.python_start() + uv.median, uv.median, 2.5
        )
        self.bench_noop_plan(state)
        full_copy()  # the modules of the plan made in full, not of its replay
        self.bench_imports(full_argv)

    def bench_noop_plan(self, state: Path) -> None:
        """A no-op ``plan`` of the image (answered by the fast path after the first) vs uv."""
        image = self.prefixes["image"]
        rec_argv = self.rec(state, "plan", self.work / "noop.yaml", "--env", "image")
        uv_argv = self.uv_install(image, self._reqs("noop", "image"), dry_run=True)
        rec = self.new_series("reconciler plan (no-op, image)", rec_argv)
        uv = self.new_series("uv pip install --dry-run no-op (image)", uv_argv)
        for measured in self.rounds():
            r = self.run(
                rec_argv,
                lambda r: r.returncode == 0 and r.stdout.rstrip().endswith("matches the manifest."),
                "no-op plan",
            )
            u = self.run(
                uv_argv,
                lambda r: r.returncode == 0 and "Would make no changes" in r.stderr,
                "uv no-op dry run",
            )
            self.clean_lock(image)
            if measured:
                rec.add(r.seconds, r.maxrss_kib)
                uv.add(u.seconds, u.maxrss_kib)
        ratio = rec.median / uv.median
        self.rows.append(
            Row(
                "no-op plan (image)",
                f"{rec.median:.3f} s",
                f"uv --dry-run {uv.median:.3f} s",
                f"{ratio:.2f}x",
                "<= 1.5x uv --dry-run",
                _verdict(ratio <= 1.5),
                self._profile_cmd(rec_argv, None),
            )
        )

    def bench_imports(self, argv: list[str]) -> None:
        """``-X importtime`` of the modules the pending plan imports: the sum of their own
        times (each at its minimum over the runs, which filters other load), without what
        ``python -c pass`` imports too.

        The plan itself only names the modules: it imports some in worker threads, and
        ``-X importtime`` keeps one global clock, so a module imported in a thread while
        the main thread imports another gets a wrong (even negative) self time. The names
        are then imported in that order, in one thread, by ``python -X importtime -c``.
        """
        head = [sys.executable, "-X", "importtime"]
        head += self.reconciler if len(self.reconciler) == 1 else self.reconciler[1:]
        plan = [*head, *argv[len(self.reconciler) :]]  # as users run it (console script or -m)
        r = self.run(plan, lambda r: r.returncode in (0, 2), "-X importtime (the plan's modules)")
        names = list(_importtime_self(r.stderr))
        loop = f"for m in {names!r}:\n try: __import__(m)\n except ImportError: pass\n"
        command = [sys.executable, "-X", "importtime", "-c", loop]
        baseline = [sys.executable, "-X", "importtime", "-c", "pass"]
        ours: dict[str, int] = {}
        base: dict[str, int] = {}
        for _ in range(max(3, self.config.runs)):
            for target, table in ((command, ours), (baseline, base)):
                r = self.run(target, lambda r: r.returncode == 0, "-X importtime")
                for name, own in _importtime_self(r.stderr).items():
                    table[name] = min(table.get(name, own), own)
        extra = {name: us for name, us in ours.items() if name not in base}
        total = sum(extra.values()) / 1e6
        self.notes.append(
            f"imports of a pending plan: {len(extra)} modules beyond `python -c pass`, "
            f"{total * 1000:.0f} ms (imported in one thread); the largest: "
            + ", ".join(
                f"{n} {us / 1000:.1f} ms"
                for n, us in sorted(extra.items(), key=lambda kv: -kv[1])[:6]
            )
        )
        self.rows.append(
            Row(
                "imports of a pending plan",
                f"{total * 1000:.0f} ms",
                f"{len(extra)} modules",
                "-",
                "<= 60 ms",
                _verdict(total <= 0.060),
                self._profile_cmd(argv, None),
            )
        )

    # -- 3. apply of 5 packages into 3 environments --

    def bench_apply(self) -> None:
        """Each round: the apply at an app restart (a copy of the state dir the first
        round's apply left, into the environments as they were before it: what a Studio
        app's start finds, its home kept and its image reset, on the same host: the
        RECORDs keep their ctimes), the same as the lifecycle script runs it, the same on
        a new host (every RECORD read again), then the first apply of the manifest (a
        copy of ``state0``: no preview record, no RECORD or wheel caches), then the uv
        installs. All are held to the target."""
        manifest = self.work / "missing.yaml"
        rec = self.new_series(
            "reconciler apply (5 new x 3 envs), app restart",
            self.rec(Path("$W/state-apply"), "apply", manifest),
        )
        first = self.new_series(
            "reconciler apply (5 new x 3 envs), first",
            self.rec(Path("$W/state-apply"), "apply", manifest),
        )
        life = self.new_series(
            "reconciler apply --background (5 new x 3 envs), app restart",
            [*self.rec(Path("$W/state-apply"), "apply", manifest), *LIFECYCLE],
        )
        host = self.new_series(
            "reconciler apply (5 new x 3 envs), app restart on a new host",
            self.rec(Path("$W/state-apply"), "apply", manifest),
        )
        uv_each = {
            n: self.new_series(
                f"uv pip install 5 new: {n}", self.uv_install(p, self._reqs("missing", n))
            )
            for n, p in self.prefixes.items()
        }
        uv_seq = Series("uv 5 new: 3 sequential installs")
        dry_together = Series("uv 5 new: 3 dry runs at once")
        installs_together = Series("uv 5 new: 3 installs at once")
        restart = self.work / "state-restart"

        def restarted() -> Path:
            """A fresh copy of the state dir the first round's apply left."""
            state = self.work / "state-apply"
            shutil.rmtree(state)
            shutil.copytree(restart, state)
            return state

        for measured in self.rounds():
            if not restart.exists():
                self.apply_missing(self.fresh_state("state-apply"), manifest)
                shutil.copytree(self.work / "state-apply", restart)
            r = self.apply_missing(restarted(), manifest)
            b = self.apply_missing(restarted(), manifest, *LIFECYCLE)
            h = self.apply_on_a_new_host(restarted(), manifest, restart)
            f = self.apply_missing(self.fresh_state("state-apply"), manifest)
            total = 0.0
            for name, prefix in self.prefixes.items():
                u = self.run(
                    self.uv_install(prefix, self._reqs("missing", name)),
                    lambda r, p=prefix: r.returncode == 0 and self.has_new_packages(p),  # type: ignore[misc]
                    "uv install of 5 packages",
                )
                total += u.seconds
                if measured:
                    uv_each[name].add(u.seconds, u.maxrss_kib)
            self.restore_all()
            dry, installs = self.together()
            if measured:
                rec.add(r.seconds, r.maxrss_kib)
                life.add(b.seconds, b.maxrss_kib)
                host.add(h.seconds, h.maxrss_kib)
                first.add(f.seconds, f.maxrss_kib)
                uv_seq.add(total)
                dry_together.add(dry)
                installs_together.add(installs)
        self.series += [uv_seq, dry_together, installs_together]
        slowest_name, slowest = max(uv_each.items(), key=lambda kv: kv[1].median)

        def held(label: str, series: Series, profile: Callable[[], None] | None = None) -> Row:
            """The row of ``series`` against three sequential uv installs, at 1.5x."""
            ratio = series.median / uv_seq.median
            return Row(
                label,
                f"{series.median:.3f} s",
                f"uv x3 sequential {uv_seq.median:.3f} s",
                f"{ratio:.2f}x",
                "<= 1.5x uv x3 sequential",
                _verdict(ratio <= 1.5),
                profile,
            )

        profile = self._profile_cmd(
            self.rec(self.work / "state-profile", "apply", manifest),
            lambda: self.fresh_state("state-profile"),
            after=self.restore_all,
        )
        self.rows.append(held("apply 5 new pkgs into each of 3 envs (app restart)", rec, profile))
        self.rows.append(
            Row(
                "",
                "",
                f"slowest single uv {slowest.median:.3f} s ({slowest_name})",
                f"{rec.median / slowest.median:.2f}x",
                "(info)",
                "info",
            )
        )
        for label, series in (
            ("  the lifecycle script's apply --background --wait, app restart", life),
            ("  the same on a new host (the image unpacked anew: new ctimes)", host),
            ("  the first apply of the manifest", first),
        ):
            self.rows.append(held(label, series))
        floor = self.python_start() + dry_together.median + installs_together.median
        self.floor_row("python + 3 dry runs, 3 installs at once", floor, uv_seq.median, 1.5)

    def apply_missing(self, state: Path, manifest: Path, *flags: str) -> Run:
        """reconciler's apply of the 5 packages with ``state``, checked; then restored."""
        # The environments were restored (uv uninstall) a moment ago. A speculative
        # preview is not started for an environment changed within its clock slack
        # (50 ms) before the call; an app's image is never that new at its start, so
        # the measured apply starts after it, as the real stack's does.
        time.sleep(0.1)
        r = self.run(
            [*self.rec(state, "apply", manifest), *flags],
            lambda r: r.returncode == 0 and all(map(self.has_new_packages, self.prefixes.values())),
            "apply of 5 packages",
        )
        self.restore_all()
        return r

    def apply_on_a_new_host(self, state: Path, manifest: Path, restart: Path) -> Run:
        """:meth:`apply_missing` after the environments' files got new ctimes (what a
        host that unpacks the image anew gives them, with the same bytes and mtimes: of
        what reconciler keeps, only the RECORDs' cache looks at ctimes, so only they are
        touched), so that every RECORD is read again; ``restart`` then gets the RECORD
        cache that run kept, so that the next round's app restart is on the same host."""
        for prefix in self.prefixes.values():
            for record in prefix.glob("lib/python*/site-packages/*.dist-info/RECORD"):
                record.chmod(record.stat().st_mode)  # the ctime only
        time.sleep(0.1)  # older than the RECORD cache's slack when the apply reads them
        r = self.apply_missing(state, manifest)
        shutil.copy2(state / RECORD_HEADS, restart / RECORD_HEADS)
        return r

    def together(self) -> tuple[float, float]:
        """A safe apply's uv work with nothing else: the three environments' dry runs
        at once, then their installs at once (wall seconds of each); then restored."""
        reqs = {n: self._reqs("missing", n) for n in self.prefixes}
        dry, runs = run_together(
            [self.uv_install(p, reqs[n], dry_run=True) for n, p in self.prefixes.items()],
            self.env, self.work,
        )  # fmt: skip
        if any(r.returncode != 0 for r in runs):
            raise CheckFailed("uv dry runs at once:\n" + "\n".join(r.describe() for r in runs))
        for prefix in self.prefixes.values():
            self.clean_lock(prefix)
        installs, runs = run_together(
            [self.uv_install(p, reqs[n]) for n, p in self.prefixes.items()], self.env, self.work
        )
        if any(r.returncode != 0 for r in runs) or not all(
            map(self.has_new_packages, self.prefixes.values())
        ):
            raise CheckFailed("uv installs at once:\n" + "\n".join(r.describe() for r in runs))
        self.restore_all()
        return dry, installs

    # -- 4. scale --

    def bench_scale(self) -> None:
        count = self.config.scale_envs
        log = _log
        scale = fx.ensure_scale(count, log=log)
        environments = {
            f"env{i:02d}": {"prefix": prefix, "pip": reqs}
            for i, (prefix, reqs) in enumerate(scale.items())
        }
        document = {
            "version": 1,
            "defaults": {
                "pip": {"no_index": True, "find_links": [str(self.fixture.wheelhouse)]},
                "installer": "uv",
            },
            "environments": environments,
        }
        manifest = self.work / "scale.yaml"
        manifest.write_text(yaml.safe_dump(document, sort_keys=False))
        cold_state = self.work / "state-scale-cold"

        def ok(r: Run) -> bool:
            return r.returncode == 0 and r.stdout.rstrip().splitlines()[-1].startswith("No changes")

        cold_argv = self.rec(cold_state, "plan", manifest)
        cold = self.new_series(
            f"reconciler plan ({count} envs x 1000 dists, empty state)", cold_argv
        )
        state = self.work / "state-scale"
        capture = self.rec(state, "baseline", "capture", manifest)
        self.run(capture, lambda r: r.returncode == 0, "scale baseline capture")
        argv = self.rec(state, "plan", manifest)
        series = self.new_series(f"reconciler plan ({count} envs x 1000 dists, planner)", argv)
        fast = self.new_series(f"reconciler plan ({count} envs x 1000 dists, fast path)", argv)
        stamps = state / NOOP_STAMPS
        cpu: dict[str, list[float]] = {"warm": [], "empty state dir": [], "fast path": []}
        for measured in self.rounds():
            # The planner itself: without the no-op stamps the fast path cannot answer.
            stamps.unlink(missing_ok=True)
            r = self.run(argv, ok, "scale plan")
            f = self.run(argv, ok, "scale plan (fast path)")
            shutil.rmtree(cold_state, ignore_errors=True)
            c = self.run(cold_argv, ok, "scale plan on an empty state dir")
            if measured:
                series.add(r.seconds, r.maxrss_kib)
                fast.add(f.seconds, f.maxrss_kib)
                cold.add(c.seconds, c.maxrss_kib)
                for key, run in (("warm", r), ("empty state dir", c), ("fast path", f)):
                    cpu[key].append(run.cpu_seconds)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        self.notes.append(
            f"plan {count} envs x 1,000 dists: the child's CPU time (user + system, wait4), "
            "medians: "
            + ", ".join(f"{key} {statistics.median(v):.3f} s" for key, v in cpu.items())
            + f" (wall times above; load {load} at the end of the section)"
        )
        full = count == 50
        suffix = "" if full else " (for 50 envs)"
        self.rows.append(
            Row(
                f"plan {count} envs x 1,000 dists (no-op, warm)",
                f"{series.median:.3f} s",
                "-",
                "-",
                "<= 2 s" + suffix,
                _verdict(series.median <= 2.0) if full else "info",
                self._profile_cmd(argv, lambda: stamps.unlink(missing_ok=True)),
            )
        )
        self.rows.append(
            Row(
                "  the same, empty state dir",
                f"{cold.median:.3f} s",
                "-",
                "-",
                "<= 4 s" + suffix,
                _verdict(cold.median <= 4.0) if full else "info",
                self._profile_cmd(
                    self.rec(self.work / "state-scale-profile", "plan", manifest),
                    lambda: shutil.rmtree(self.work / "state-scale-profile", ignore_errors=True),
                ),
            )
        )
        peak = max(series.peak_mib, cold.peak_mib)
        self.rows.append(
            Row(
                "  peak memory (child ru_maxrss)",
                f"{peak:.0f} MiB",
                "-",
                "-",
                "<= 200 MiB" + suffix,
                _verdict(peak <= 200) if full else "info",
                self._profile_cmd(argv, lambda: stamps.unlink(missing_ok=True)),
            )
        )
        self.rows.append(
            Row(
                "  the same answered by the fast path",
                f"{fast.median:.3f} s",
                "-",
                "-",
                "(info)",
                "info",
            )
        )

    # -- 5. start-up --

    def bench_version(self) -> None:
        rec_argv = self.rec(None, "--version")
        py_argv = [sys.executable, "-c", "pass"]
        rec = self.new_series("reconciler --version", rec_argv)
        py = self.new_series("python -c pass", py_argv)
        for measured in self.rounds(self.config.version_runs):
            r = self.run(
                rec_argv, lambda r: r.returncode == 0 and "reconciler" in r.stdout, "--version"
            )
            p = self.run(py_argv, lambda r: r.returncode == 0, "python -c pass")
            if measured:
                rec.add(r.seconds, r.maxrss_kib)
                py.add(p.seconds, p.maxrss_kib)
        diff = rec.median - py.median
        self.rows.append(
            Row(
                "--version start-up",
                f"{rec.median:.3f} s",
                f"python -c pass {py.median:.3f} s",
                f"{diff:+.3f} s",
                "<= +0.030 s",
                _verdict(diff <= 0.03),
                self._profile_cmd(rec_argv, None),
            )
        )

    # -- profiles --

    def _profile_cmd(
        self,
        argv: list[str],
        prepare: Callable[[], object] | None,
        after: Callable[[], object] | None = None,
    ) -> Callable[[], None]:
        args = argv[len(self.reconciler) :]  # after the command itself
        command = [sys.executable, "-m", "reconciler", *args]

        def profile() -> None:
            print(f"\n### profile: {self._short(' '.join(argv))}")
            if prepare:
                prepare()
            r = run_timed([sys.executable, "-X", "importtime", *command[1:]], self.env, self.work)
            if after:
                after()
            print(_importtime_summary(r.stderr, r.seconds))
            if prepare:
                prepare()
            out = self.work / "profile.prof"
            profiled = [sys.executable, "-m", "bench.profiled", str(out), *args]
            r = run_timed(profiled, self.env, self.work)
            if after:
                after()
            print(_cprofile_summary(out, r.seconds))
            if prepare:
                prepare()
            r = run_timed([sys.executable, "-m", "bench.phases", *args], self.env, self.work)
            if after:
                after()
            print(r.stderr.rstrip())

        profile.key = hash(tuple(argv))  # type: ignore[attr-defined]
        return profile


def _diff(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> str:
    """Files created, changed or removed between two snapshots, summarised."""
    paths = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if not paths:
        return ""
    sizes = {after.get(k, (0, 0))[0] for k in paths}
    extra = " (all empty)" if sizes == {0} else ""
    shown = ", ".join(paths[:4]) + (f", ... ({len(paths)} files)" if len(paths) > 4 else "")
    return shown + extra


def _uv_noop(r: Run) -> bool:
    """uv exited 0, said it checked the requirements and installed nothing."""
    said = ("Checked ", "Audited ")
    return r.returncode == 0 and any(w in r.stderr for w in said) and "Installed" not in r.stderr


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _importtime_self(stderr: str) -> dict[str, int]:
    """Module -> its own import time in microseconds, from ``-X importtime`` output, in
    import order (a name listed twice, re-entered from a package's ``__init__``, adds up)."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line[12:].split("|")
        out[name.strip()] = out.get(name.strip(), 0) + int(own)
    return out


def _importtime_summary(stderr: str, seconds: float, top: int = 12) -> str:
    """Total import time, the slowest top-level imports (cumulative) and modules (self)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, cumulative_us, name = (part.strip("\n") for part in ("", *line[12:].split("|")))
        rows.append((int(self_us), int(cumulative_us), name.rstrip()))
    total = sum(r[0] for r in rows) / 1e6
    top_level = sorted((r for r in rows if not r[2].startswith("  ")), key=lambda r: -r[1])
    by_self = sorted(rows, key=lambda r: -r[0])
    out = [f"-X importtime: {len(rows)} modules, {total:.3f} s of imports in a {seconds:.3f} s run"]
    out.append("  top-level imports by cumulative time:")
    out += [f"    {c / 1000:7.1f} ms  {n.strip()}" for _, c, n in top_level[:top]]
    out.append("  modules by self time:")
    out += [f"    {s / 1000:7.1f} ms  {n.strip()}" for s, _, n in by_self[:top]]
    return "\n".join(out)


def _cprofile_summary(path: Path, seconds: float, top: int = 22) -> str:
    """The functions with the most cumulative time (reconciler's first), from a cProfile dump."""
    stats = pstats.Stats(str(path), stream=io.StringIO()).stats  # type: ignore[attr-defined]

    def where(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        for root in (str(REPO) + "/", *(p + "/" for p in sys.path if p.endswith("-packages"))):
            if filename.startswith(root):
                filename = filename[len(root) :]
                break
        else:
            filename = os.path.basename(filename)
        return f"{filename}:{line}({func})" if line else func

    rows = sorted(stats.items(), key=lambda kv: -kv[1][3])
    ours = [kv for kv in rows if kv[0][0].startswith(str(REPO / "reconciler"))]
    out = [f"cProfile ({seconds:.3f} s run under the profiler; cumulative / self seconds):"]
    out.append("  reconciler functions:")
    out += [f"    {v[3]:7.3f} {v[2]:7.3f}  {v[1]:>6}  {where(k)}" for k, v in ours[:top]]
    out.append("  everything (imports and waits included):")
    out += [f"    {v[3]:7.3f} {v[2]:7.3f}  {v[1]:>6}  {where(k)}" for k, v in rows[: top // 2]]
    return "\n".join(out)


def _log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# -- output ------------------------------------------------------------------------------


def _header(config: Config, uv: str, reconciler: str, fixture: fx.Fixture) -> list[str]:
    uv_version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()
    pip_version = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True
    ).stdout.split(" from ")[0]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    from reconciler import __version__

    mode = "quick" if config.quick else "full"
    stats = {name: fx.read_dists(p) for name, p in fixture.environments.items()}
    records = len(list((fixture.image / "conda-meta").glob("*.json")))
    return [
        f"reconciler benchmark ({mode}: {config.warmup} warm-up + {config.runs} measured runs "
        f"each, medians; pip: {config.pip_runs}, --version: {config.version_runs} measured runs)",
        f"machine:    {_cpu_model()}, {cores} cores, load {load}, {platform.platform()}",
        f"python:     {platform.python_version()} ({sys.executable}); uv {uv_version.split()[1]}"
        f" ({uv}); {pip_version}",
        f"reconciler: {__version__} at {_git_revision()}; run as {reconciler}; bytecode on",
        f"fixture:    image = SageMaker Distribution 4.4.1 CPU ({records} conda records, "
        f"{len(stats['image'])} dist-infos, Python 3.12, no pip module); venv-a, venv-b = "
        f"{len(stats['venv-a'])}/{len(stats['venv-b'])} dists (Python "
        f"{platform.python_version()}, no pip module)",
        f"            declared per env: {fx.DECLARED_PER_ENV} installed packages (image: "
        f"{fx.IMAGE_CONDA_DECLARED} as conda specs); missing manifest adds "
        f"{len(fx.NEW_PACKAGES)} new ({', '.join(n for n, _ in fx.NEW_PACKAGES)}); wheelhouse "
        f"{len(list(fixture.wheelhouse.glob('*.whl')))} wheels, --no-index --find-links",
    ]


def _table(rows: Sequence[Row]) -> list[str]:
    head = ("measurement", "reconciler", "compared with", "ratio/diff", "target", "result")
    cells = [head] + [(r.measurement, r.ours, r.other, r.ratio, r.target, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = []
    for k, c in enumerate(cells):
        lines.append("  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _series_lines(series: Sequence[Series]) -> list[str]:
    out = [f"{'series':42} {'n':>2} {'median':>8} {'min-max':>13} {'peak RSS':>9}  command"]
    for s in series:
        if not s.times:
            continue
        rss = f"{s.peak_mib:.0f} MiB" if any(s.maxrss_kib) else "-"
        out.append(
            f"{s.label:42} {len(s.times):>2} {s.median:8.3f} {s.spread():>13} {rss:>9}  {s.command}"
        )
    return out


METHOD = [
    "Every command is a separate process (subprocess, no shell), timed by wall clock from",
    "start to wait4(); peak RSS is the child's own ru_maxrss. Competitors alternate within",
    "each round. Children get an isolated environment: PIP_*/UV_* dropped, UV_NO_CONFIG=1,",
    "PIP_CONFIG_FILE=/dev/null, a per-run HOME and uv cache (warmed by the warm-up round),",
    "PYTHONDONTWRITEBYTECODE unset. The environments are per-run hard-linked copies of the",
    "cached fixture ($C); uv's empty .lock is removed after each uv call. reconciler runs",
    "with a state dir whose baselines were captured first (`baseline capture`) and whose",
    "read cache is warm. Apply of 5 packages, at an app restart: each round starts from a",
    "fresh copy of the state dir the first round's apply left (home kept, image reset);",
    "the first apply of the manifest: from a fresh copy of that first state dir; each",
    "apply starts 0.1 s after the environments were restored (an image is never changed",
    "within the previews' clock slack before an app starts). After",
    "reconciler and after the uv installs the 5 packages are removed",
    "with `uv pip uninstall` and each environment's top-level and site-packages listings",
    "are checked equal to the original's. uv sum / pip sum: the three per-environment",
    "no-ops run back to back, summed per round. pip runs as ENV/bin/python -m pip when the",
    "environment can import pip, else python -m pip --python ENV/bin/python.",
]


def _remove_stale_work_dirs() -> None:
    """Work dirs of runs that died (their pid is gone) and were not kept with --keep."""
    for path in fx.CACHE.glob("run-*-*"):
        try:
            pid = int(path.name.split("-")[1])
        except ValueError:
            continue
        if (path / ".keep").exists() or _alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STEPS = ("noop", "plan", "apply", "scale", "version", "real")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small version (seconds)")
    parser.add_argument("--runs", type=int, default=0, help="measured runs per comparison")
    parser.add_argument(
        "--profile", action="store_true", help="importtime + cProfile of each FAIL's command"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--only",
        action="append",
        choices=STEPS,
        help="run only this section (repeatable); the scale section runs at its full size "
        "(50 environments) unless --quick",
    )
    args = parser.parse_args(argv)
    config = Config.from_args(args)
    if Path.cwd().resolve() != REPO.resolve():
        _log(f"note: run from {Path.cwd()}; the repository is {REPO}")
    started = time.perf_counter()
    fixture = fx.ensure_fixture(log=_log)
    originals = {name: fx.snapshot(p) for name, p in fixture.environments.items()}
    uv = uv_binary()
    reconciler, how = reconciler_command()
    _remove_stale_work_dirs()
    work = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=fx.CACHE))
    if config.keep:
        (work / ".keep").touch()
    bench = Bench(config, work, fixture, uv, reconciler)
    try:
        steps = [
            bench.bench_noop,
            bench.bench_plan,
            bench.bench_apply,
            bench.bench_scale,
            bench.bench_version,
            real.step(bench),  # the real-wheel fixture (bench/real.py)
        ]
        only = set(args.only or STEPS)
        steps = [s for s in steps if s.__name__.removeprefix("bench_") in only]
        bench.setup(prefixes=bool(only & {"noop", "plan", "apply"}))
        for step in steps:
            _log(f"{step.__name__.removeprefix('bench_')} ...")
            step()
        lines = _header(config, uv, how, fixture)
        lines += ["", *_table(bench.rows), "", *_series_lines(bench.series), ""]
        lines += [f"note: {n}" for n in bench.notes]
        lines += ["", *METHOD]
        for name, p in fixture.environments.items():
            if fx.snapshot(p) != originals[name]:
                lines.append(f"WARNING: the cached original {p} changed; it will be rebuilt")
                fx.invalidate(p)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        lines.append(
            f"\n(total {time.perf_counter() - started:.0f} s; load at the end {load}; $W = {work})"
        )
        print("\n".join(lines), flush=True)
        if config.profile:
            done: set[int] = set()
            for row in bench.rows:
                if row.verdict == "FAIL" and row.profile is not None:
                    key = getattr(row.profile, "key", id(row.profile))
                    if key not in done:
                        done.add(key)
                        row.profile()
        return 0
    except CheckFailed as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        if not config.keep:
            shutil.rmtree(work, ignore_errors=True)
