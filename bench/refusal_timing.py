"""Time a plan with a refusal next to the same plan without one (issue 9 item 6).

Not a test: ``python -m bench.refusal_timing [--runs N]`` prints median wall times of

* ``plan`` of ``[gamma]`` in a venv where alpha 1.0 is managed (refused: gamma needs
  beta 2, which needs alpha>=2), and of the same request in a venv without alpha
  (allowed: alpha, beta and gamma are installed); both venvs have pip, which the
  refusal path used to switch to;
* the plain ``uv pip install --dry-run`` of the same request, for scale.

Everything is offline: the tests' tiny wheels in a local wheelhouse; with
``--real``, the real tier's venv of 54 PyPI distributions (:mod:`bench.real`):
``plan`` of 8 image packages plus 4 missing ones (12 installs) next to the same
plus ``pytest==8.2.2``, whose ``pluggy>=1.5`` the managed pluggy 1.0.0 refuses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.envs import isolated_env, make_venv, pip_install, uv_bin
from tests.support.manifests import REPO, write_manifest
from tests.support.wheels import build_wheelhouse


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median(argv: list[str], env: dict[str, str], runs: int, expect: int) -> tuple[float, float]:
    """Median wall time and median CPU time (the process and everything it waited for:
    less sensitive to a loaded machine than wall time)."""
    walls, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), _cpu()
        # Not from the repository: ``python -m`` would import the tree in the cwd.
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd="/")
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
        if proc.returncode != expect:
            raise SystemExit(
                f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="source tree to plan with (compare before/after)"
    )
    parser.add_argument("--real", action="store_true", help="the real tier's venv instead")
    args = parser.parse_args()
    if args.real:
        _real(args)
        return
    with tempfile.TemporaryDirectory(prefix="refusal-timing-") as tmp:
        root = Path(tmp)
        env = {**isolated_env(root / "uv-cache"), "PYTHONPATH": str(args.repo)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # else every run recompiles networkx
        wheelhouse = build_wheelhouse(root / "wheelhouse")
        refused = make_venv(root / "refused", with_pip=True)
        allowed = make_venv(root / "allowed", with_pip=True)
        pip_install(refused, ["alpha==1.0"], wheelhouse, env)
        pip_install(allowed, ["delta==1.0"], wheelhouse, env)
        plan = [sys.executable, "-m", "reconciler", "--state-dir", str(root / "state"), "plan"]
        results = {}
        for name, prefix, code in (("refused", refused, 3), ("allowed", allowed, 0)):
            manifest = write_manifest(
                root / f"{name}.yaml",
                {name: {"prefix": prefix, "pip": ["gamma"]}},
                wheelhouse=wheelhouse,
            )
            capture = [*plan[:-1], "baseline", "capture", "-q", str(manifest)]
            subprocess.run(capture, env=env, cwd="/", check=True)
            results[name] = _median([*plan, "-q", str(manifest)], env, args.runs, code)
        uv = [
            uv_bin(), "pip", "install", "--dry-run", "--python", str(allowed / "bin" / "python"),
            "--no-index", "--find-links", str(wheelhouse), "gamma",
        ]  # fmt: skip
        results["uv dry run"] = _median(uv, env, args.runs, 0)
    _report(results, args.runs)


def _real(args: argparse.Namespace) -> None:
    from bench.real import MISSING, NOOP, REFUSED, ensure_real_fixture
    from tests.real.stack import clone_env

    wheels, venv, _ = ensure_real_fixture()
    with tempfile.TemporaryDirectory(prefix="refusal-timing-real-") as tmp:
        root = Path(tmp)
        env = {**isolated_env(root / "uv-cache"), "PYTHONPATH": str(args.repo)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        prefix = root / "prefix"
        clone_env(venv, prefix)
        state = str(root / "state")
        cli = [sys.executable, "-m", "reconciler", "--state-dir", state]
        results = {}
        for name, pip, code in (
            ("refused", (*NOOP, *MISSING, REFUSED), 3),
            ("allowed", (*NOOP, *MISSING), 0),
        ):
            manifest = root / f"{name}.yaml"
            manifest.write_text(
                "version: 1\ndefaults:\n  installer: uv\n  pip: {no_index: true, find_links: "
                f"[{json.dumps(str(wheels))}]}}\nenvironments:\n  image:\n    prefix: "
                f"{json.dumps(str(prefix))}\n    pip: {json.dumps(list(pip))}\n"
            )
            if name == "refused":
                capture = [*cli, "baseline", "capture", "-q", str(manifest)]
                subprocess.run(capture, env=env, cwd="/", check=True)
            results[name] = _median([*cli, "plan", "-q", str(manifest)], env, args.runs, code)
        uv = [
            uv_bin(), "pip", "install", "--dry-run", "--python", str(prefix / "bin" / "python"),
            "--no-index", "--find-links", str(wheels), *NOOP, *MISSING,
        ]  # fmt: skip
        results["uv dry run"] = _median(uv, env, args.runs, 0)
        (prefix / ".lock").unlink(missing_ok=True)
    _report(results, args.runs)


def _report(results: dict[str, tuple[float, float]], runs: int) -> None:
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {runs} runs")
    for name, (wall, cpu) in results.items():
        print(f"{name:>11}: {wall * 1000:7.0f} ms wall, {cpu * 1000:7.0f} ms CPU")
    for i, what in enumerate(("wall", "CPU")):
        ratio = results["refused"][i] / results["allowed"][i]
        print(f"refused / allowed ({what}): {ratio:.2f}x")


if __name__ == "__main__":
    main()
