"""Satisfied requests the pins hold whole are left out of what the installer resolves.

A request met by an installed distribution whose whole closure is installed, met and
pinned (managed or foreign) can only be kept as it is by a resolver: the preview and
the install resolve the other requests alone (reconciler/plan/requirements.py
``settled``, reconciler/plan/pip_side.py). Real venvs, real uv and pip, a local
wheelhouse; the closure rules on hand-made distributions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.plan.requirements import marker_environment, settled
from reconciler.state.python import Distribution
from reconciler.state.store import Owned, OwnedPackage, StateStore
from tests.support.envs import base_interpreter, make_venv, pip_install
from tests.support.manifests import SITE, run_cli, write_dist_info, write_manifest


def _dist(name: str, *requires: str) -> Distribution:
    return Distribution(name, name, "1.0", requires, "uv", f"{name}-1.0.dist-info")


ENV = marker_environment("3.11")


def _settled(dists: list[Distribution], roots: list[str], pinned: set[str]) -> list[str]:
    table = {d.name: d for d in dists}
    parsed = [(r.partition("[")[0], frozenset(r.partition("[")[2].rstrip("]").split(",")) - {""})
              for r in roots]  # fmt: skip
    found = settled(parsed, table, ENV, pinned.__contains__)
    return sorted(name + (f"[{','.join(sorted(x))}]" if x else "") for name, x in found)


def test_a_root_is_settled_when_all_it_reaches_is_installed_met_and_pinned() -> None:
    dists = [_dist("a", "b>=1"), _dist("b", "c"), _dist("c"), _dist("d", "c", "e")]
    assert _settled(dists, ["a", "d"], {"a", "b", "c", "d"}) == ["a"]  # e is missing
    assert _settled(dists, ["a", "c"], {"a", "b"}) == []  # c may move
    assert _settled([_dist("a", "b>=2"), _dist("b")], ["a"], {"a", "b"}) == []  # b 1.0 < 2
    assert _settled(dists, ["a"], {"b", "c"}) == []  # the root itself may move


def test_cycles_extras_markers_and_unparseable_requirements() -> None:
    cycle = [_dist("a", "b"), _dist("b", "a", "c"), _dist("c")]
    assert _settled(cycle, ["a", "b"], {"a", "b", "c"}) == ["a", "b"]
    assert _settled(cycle, ["a", "b"], {"a", "b"}) == []  # c, reached by both, may move
    extra = [_dist("a", 'x; extra == "more"'), _dist("x")]
    assert _settled(extra, ["a", "a[more]"], {"a"}) == ["a"]  # x only with the extra
    marked = [_dist("a", 'x; python_version < "3"')]
    assert _settled(marked, ["a"], {"a"}) == ["a"]  # x never applies: not reached
    assert _settled([_dist("a", "b >= >= 1"), _dist("b")], ["a"], {"a", "b"}) == []
    # Markers the marker environment answers as reconciler's own interpreter would: the
    # target's micro version may differ from it.
    for marker in ('python_full_version < "3.11.5"', 'implementation_version >= "3.11.5"'):
        inexact = [_dist("a", f"x; {marker}"), _dist("x")]
        assert _settled(inexact, ["a"], {"a", "x"}) == [], marker
    # The implementation is CPython's (a target's lib/pythonX.Y) and the platform this
    # machine's: pyzmq's cffi for PyPy is not needed, nor installed.
    for marker in (
        'implementation_name == "pypy"',
        'platform_python_implementation == "PyPy"',
        'platform_release < "0"',
    ):
        exact = [_dist("a", f"cffi; {marker}")]
        assert _settled(exact, ["a"], {"a"}) == ["a"], marker


def _plan_env(capsys: pytest.CaptureFixture[str], state: Path, manifest: Path) -> dict:  # type: ignore[type-arg]
    code, out, err = run_cli(capsys, "--state-dir", state, "plan", manifest, "--json")
    assert code in (0, 2), out + err
    env: dict = json.loads(out)["environments"][0]  # type: ignore[type-arg]
    return env


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_requests_held_by_the_pins_are_not_resolved_and_the_apply_adds_the_rest(
    installer: str,
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """alpha and beta 1.0 (beta needs alpha>=1) are the image's: met and pinned, they
    are left out; delta is resolved and installed, and nothing else moves."""
    prefix = make_venv(tmp_path / "env", with_pip=installer == "pip")
    pip_install(prefix, ["alpha==1.0", "beta==1.0"], wheelhouse)
    offline = {"no_index": True, "find_links": [str(wheelhouse)]}
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["alpha", "beta>=1", "delta"]}},
        defaults={"installer": installer, "pip": offline},
    )  # fmt: skip
    state = tmp_path / "state"
    assert run_cli(capsys, "--state-dir", state, "baseline", "capture", "-q", manifest)[0] == 0
    env = _plan_env(capsys, state, manifest)
    assert env["satisfied"] == ["alpha", "beta>=1"]
    assert env["pip_requirements"] == ["delta"]
    assert {"alpha==1.0", "beta==1.0"} <= set(env["pip_constraints"])
    assert [(c["action"], c["name"]) for c in env["changes"]] == [("install", "delta")]
    site = next(prefix.glob(SITE))
    before = {p.name for p in site.glob("*.dist-info")}
    code, out, err = run_cli(capsys, "--state-dir", state, "apply", manifest)
    assert code == 0, out + err
    assert {p.name for p in site.glob("*.dist-info")} - before == {"delta-1.1.dist-info"}
    assert {"alpha-1.0.dist-info", "beta-1.0.dist-info"} <= before


def test_a_request_whose_closure_may_move_is_resolved(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """beta 1.0 is foreign, but the alpha it needs is reconciler's (it may move): beta
    stays in what is resolved, so nothing the other requests pull moves alpha from
    under it. A met request missing what it needs is resolved too (the preview
    installs it)."""
    prefix = make_venv(tmp_path / "env")
    state = tmp_path / "state"
    first = write_manifest(
        tmp_path / "first.yaml", {"e": {"prefix": prefix, "pip": ["alpha==1.0"]}},
        wheelhouse=wheelhouse,
    )  # fmt: skip
    assert run_cli(capsys, "--state-dir", state, "apply", first)[0] == 0  # alpha owned
    pip_install(prefix, ["beta==1.0"], wheelhouse)  # by hand: foreign
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["beta", "delta"]}},
        wheelhouse=wheelhouse,
    )  # fmt: skip
    env = _plan_env(capsys, state, manifest)
    assert (env["satisfied"], env["pip_requirements"]) == (["beta"], ["beta", "delta"])

    bare = make_venv(tmp_path / "bare")
    pip_install(bare, ["beta==1.0"], wheelhouse, extra_args=["--no-deps"])  # alpha missing
    broken = write_manifest(
        tmp_path / "broken.yaml", {"e": {"prefix": bare, "pip": ["beta"]}}, wheelhouse=wheelhouse
    )
    env = _plan_env(capsys, tmp_path / "state2", broken)
    assert env["pip_requirements"] == ["beta"]
    assert [(c["action"], c["name"]) for c in env["changes"]] == [("install", "alpha")]


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_nothing_left_to_resolve_is_no_preview(
    installer: str,
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In a ``--system-site-packages`` venv, sysdist (the base's) misses what it needs,
    which no installer call can give (uv does not see the base's packages), and alpha
    is held by the pins: nothing is resolved, and plan and apply change nothing."""
    base = base_interpreter(tmp_path / "base")  # its own site-packages, empty
    (base.parent.parent / "lib" / base.name / "site-packages").mkdir()
    write_dist_info(next(base.parent.parent.glob(SITE)), "sysdist", "1.0", ["missingdep"])
    prefix = make_venv(
        tmp_path / "env", system_site_packages=True, python=str(base), with_pip=installer == "pip"
    )
    pip_install(prefix, ["alpha==1.0"], wheelhouse)
    offline = {"no_index": True, "find_links": [str(wheelhouse)]}
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["alpha", "sysdist"]}},
        defaults={"installer": installer, "pip": offline},
    )  # fmt: skip
    state = tmp_path / "state"
    assert run_cli(capsys, "--state-dir", state, "baseline", "capture", "-q", manifest)[0] == 0
    env = _plan_env(capsys, state, manifest)
    assert (env["changes"], env["pip_requirements"], env["resolver_ran"]) == ([], [], False)
    code, out, err = run_cli(capsys, "--state-dir", state, "apply", manifest)
    assert code == 0, out + err


def test_a_saved_plan_is_refused_when_what_it_left_out_may_move_now(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """beta was held whole by the pins when the plan was saved (alpha and beta managed,
    before any baseline); alpha is reconciler's by the time it is applied (a recovered
    apply adopted it): the install would resolve delta without beta's requirement."""
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["alpha==1.0", "beta==1.0"], wheelhouse)
    state = tmp_path / "state"
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["beta", "delta"]}},
        wheelhouse=wheelhouse,
    )  # fmt: skip
    saved = tmp_path / "plan.json"
    code, out, err = run_cli(capsys, "--state-dir", state, "plan", manifest, "--out", saved)
    assert code == 0, out + err
    assert json.loads(saved.read_text())["environments"][0]["pip_requirements"] == ["delta"]
    StateStore(state).save_owned(prefix, Owned({"pip:alpha": OwnedPackage("alpha", "pip", "1.0")}))
    code, out, err = run_cli(capsys, "--state-dir", state, "apply", manifest, "--plan", saved)
    assert code != 0
    assert "leaves the met 'beta' out of what is resolved" in err, out + err
    assert not list(next(prefix.glob(SITE)).glob("delta-*"))
