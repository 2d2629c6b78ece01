"""Benchmark of issue 11: restoring a locked manifest after an image reset.

``python -m bench.restore [--quick] [--runs N]`` (from the repository root). The
image is a venv of synthetic managed distributions (:func:`bench.image.build_venv_image`);
the manifest adds packages from a local PEP 503 index on 127.0.0.1
(:mod:`tests.support.servers`), some with dependencies. After ``reconciler lock``
and a first ``reconciler apply`` (which warms uv's cache and records the state),
each repetition measures, each on a fresh copy of the image (additions missing)
and a fresh copy of the state directory as the first apply left it:

1. ``reconciler apply`` with the fresh lock file;
2. ``uv pip install --require-hashes --no-deps -r`` of the equivalent requirements
   (the lock's ``name==version --hash=sha256:...`` lines), same warm cache;
3. ``reconciler apply`` without the lock file (it resolves afresh);
4. ``python -c pass``: the interpreter's start, which any Python program in front of
   uv pays before it can run uv at all.

It prints the medians and the ratios 1/2 (target at most 1.3x) and 3/2, and the
floor (4 + 2) / 2: the ratio a Python front end reaches if it does nothing but start
and run uv. A benchmark, not a timed test: run it on a quiet machine for numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.image import build_venv_image
from bench.measure import CheckFailed, Run, isolated_env, run_timed

REPO = Path(__file__).resolve().parent.parent
TARGET = 1.3


def _additions(wheels: Path, count: int) -> list[str]:
    """``count`` new distributions; every third requires the next one. Returns the roots."""
    from tests.support.wheels import build_wheel

    roots = []
    for i in range(count):
        requires = (f"restore-add-{i + 1:03d}>=1",) if i % 3 == 0 and i + 1 < count else ()
        build_wheel(wheels, f"restore-add-{i:03d}", "1.0", requires)
        if i % 3 != 1:
            roots.append(f"restore-add-{i:03d}")
    return roots


def _check(run: Run, what: str) -> Run:
    if run.returncode != 0:
        raise CheckFailed(f"{what} failed:\n{run.describe()}")
    return run


def _reset(pristine: Path, image: Path, state_saved: Path, state: Path) -> None:
    for src, dest in ((pristine, image), (state_saved, state)):
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest, symlinks=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table."""
    from tests.support.servers import StaticServer, build_simple_index

    parser = argparse.ArgumentParser(prog="python -m bench.restore")
    parser.add_argument("--quick", action="store_true", help="small version (seconds)")
    parser.add_argument("--runs", type=int, default=0, help="repetitions (quick 3, full 9)")
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of one locked apply"
    )
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 9)
    managed, added = (100, 12) if args.quick else (600, 40)

    with tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        root = Path(tmp)
        pristine = build_venv_image(root / "pristine", managed)
        image = root / "image"
        wheels = root / "wheels"
        wheels.mkdir()
        roots = _additions(wheels, added)
        server = StaticServer(build_simple_index(wheels, root / "index")).start()
        try:
            env = isolated_env(root / "home", root / "uv-cache", pythonpath=REPO)
            state = root / "state"
            env["RECONCILER_STATE_DIR"] = str(state)
            manifest = root / "team.yaml"
            manifest.write_text(
                json.dumps(
                    {
                        "version": 1,
                        "defaults": {"pip": {"index_url": f"{server.url}simple/"}},
                        "environments": {"base": {"prefix": str(image), "pip": roots}},
                    }
                ),
                encoding="utf-8",
            )
            reconciler = [sys.executable, "-m", "reconciler"]
            shutil.copytree(pristine, image, symlinks=True)
            _check(run_timed([*reconciler, "lock", manifest], env), "reconciler lock")
            _check(run_timed([*reconciler, "apply", manifest], env), "first apply")
            state_saved = root / "state-after-first-apply"
            shutil.copytree(state, state_saved)
            lock = manifest.with_suffix(".lock")
            doc = json.loads(lock.read_text(encoding="utf-8"))
            lines = [
                f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}"
                for w in doc["environments"]["base"]["pip"]
            ]
            reqs = root / "locked-requirements.txt"
            reqs.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            uv = _uv()
            uv_argv = [
                uv, "pip", "install", "--python", image / "bin" / "python",
                "--index-url", f"{server.url}simple/", "--require-hashes", "--no-deps",
                "-r", reqs,
            ]  # fmt: skip
            times: dict[str, list[float]] = {"locked": [], "uv": [], "unlocked": [], "start": []}
            for _ in range(runs):
                _reset(pristine, image, state_saved, state)
                times["locked"].append(
                    _check(run_timed([*reconciler, "apply", manifest], env), "locked apply").seconds
                )
                _reset(pristine, image, state_saved, state)
                times["uv"].append(_check(run_timed(uv_argv, env), "uv require-hashes").seconds)
                _reset(pristine, image, state_saved, state)
                lock.rename(lock.with_suffix(".lock.away"))
                try:
                    run = run_timed([*reconciler, "apply", manifest], env)
                finally:
                    lock.with_suffix(".lock.away").rename(lock)
                times["unlocked"].append(_check(run, "apply without a lock").seconds)
                start = run_timed([sys.executable, "-c", "pass"], env)
                times["start"].append(_check(start, "python -c pass").seconds)
            if args.profile:
                _reset(pristine, image, state_saved, state)
                profile = root / "locked.prof"
                argv = [sys.executable, "-m", "bench.profiled", profile]
                _check(run_timed([*argv, "apply", manifest], env), "profiled apply")
                _print_profile(profile)
        finally:
            server.stop()

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["locked"] / med["uv"]
    print(f"restore after an image reset: {managed} managed, {len(lines)} locked additions, "
          f"{runs} runs ({'quick' if args.quick else 'full'})")  # fmt: skip
    print(f"  reconciler apply, fresh lock    {med['locked']:.3f} s  ({_spread(times['locked'])})")
    print(f"  uv pip install --require-hashes {med['uv']:.3f} s  ({_spread(times['uv'])})")
    print(f"  reconciler apply, no lock       {med['unlocked']:.3f} s  "
          f"({_spread(times['unlocked'])})")  # fmt: skip
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"  ratio locked apply / uv: {ratio:.2f}x (target <= {TARGET}x: {verdict})")
    print(f"  ratio apply without lock / uv: {med['unlocked'] / med['uv']:.2f}x")
    floor = (med["start"] + med["uv"]) / med["uv"]
    print(f"  python -c pass                  {med['start']:.3f} s  ({_spread(times['start'])})")
    print(f"  floor for a Python front end, (python -c pass + uv) / uv: {floor:.2f}x")
    return 0


def _print_profile(path: Path, top: int = 25) -> None:
    import io
    import pstats

    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


def _spread(values: Sequence[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


if __name__ == "__main__":
    sys.exit(main())
