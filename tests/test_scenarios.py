"""Planner scenarios as data (``tests/scenarios/*.yaml``), run on real environments.

Each case builds its environments for real (venvs and hybrid venv+conda prefixes
from the test wheelhouse and channel), captures the baseline, makes the hand
changes it lists, then runs ``reconciler plan --json`` and compares the plan
with the expected one. Case format::

    description: what it shows
    wheels:                       # more wheels for this case only (beside the standard ones)
      - {name: black, version: "23.1.0", requires: ["packaging>=22.0"]}
    environments:
      NAME:
        image: {kind: venv|hybrid|conda, pip: [...], conda: [...], with_pip: false}
                                  # no image: the environment does not exist yet
        baseline: true            # capture the baseline after the image (default)
        after_baseline: {pip: [...], conda: [...]}   # hand changes (foreign)
        owned: [pip:beta, conda:libfoo]              # recorded as installed by reconciler
        pinned: ["libfoo 1.0"]    # conda-meta/pinned lines
        frozen: false             # conda-meta/frozen
        manifest: {...}           # the environment's manifest body (prefix is added)
    manifest: {...}               # top-level manifest keys (protect, all, defaults)
    expect:
      exit: 0
      no_subprocess: false        # assert that planning started no process
      summary: {refused: 1}       # keys given are compared with the plan's summary
      environments:
        NAME:
          resolver_ran: true
          changes: [{action, manager, name, from, to, requested, refused,
                     required_by, reason_contains, held_back}]   # keys given are compared

``{wheelhouse}``, ``{python}`` and ``{python_version}`` in a case are replaced
by the case's wheelhouse (the standard one plus its ``wheels``), the test
interpreter and its X.Y version.
Changes are compared as a set: the expected list must have as many entries as the plan.
Every plan is also held to :mod:`tests.support.plan_checks` (refusals quote a
requirement the installed version fails; transitive changes name their chain).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.cli import main
from reconciler.state.environment import read_state
from reconciler.state.store import Owned, OwnedPackage, StateStore
from tests.support.envs import conda_install_more, make_conda_prefix, make_venv, pip_install
from tests.support.plan_checks import (
    assert_refusals_quote_excluding_requirements,
    assert_transitive_changes_have_required_by,
)
from tests.support.wheels import build_wheel

PLAN_SCHEMA = json.loads(
    (Path(__file__).parents[1] / "schemas" / "plan.v1.schema.json").read_text(encoding="utf-8")
)
CASES = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


def _build(prefix: Path, image: dict[str, Any], wheelhouse: Path, channel: Path) -> None:
    kind = image.get("kind", "venv")
    if kind == "venv":
        make_venv(prefix, with_pip=bool(image.get("with_pip")))
    else:
        make_conda_prefix(prefix, channel, list(image.get("conda", [])), hybrid=kind == "hybrid")
    if image.get("pip"):
        pip_install(prefix, image["pip"], wheelhouse)


def _hand_changes(prefix: Path, changes: dict[str, Any], wheelhouse: Path, channel: Path) -> None:
    if changes.get("conda"):
        conda_install_more(prefix, channel, changes["conda"])
    if changes.get("pip"):
        pip_install(prefix, changes["pip"], wheelhouse)


def _record_owned(store: StateStore, prefix: Path, keys: list[str]) -> None:
    packages = read_state(prefix).packages()
    owned = {}
    for key in keys:
        pkg = packages[key]
        owned[key] = OwnedPackage(pkg.name, pkg.manager, pkg.version)
    store.save_owned(prefix, Owned(owned))


def _manifest(
    case: dict[str, Any], prefixes: dict[str, Path], wheelhouse: Path, channel: Path
) -> dict[str, Any]:
    top = dict(case.get("manifest") or {})
    defaults = dict(top.pop("defaults", {}) or {})
    defaults.setdefault("channels", [channel.as_uri()])
    defaults.setdefault("pip", {"no_index": True, "find_links": [str(wheelhouse)]})
    environments = {}
    for name, spec in case["environments"].items():
        environments[name] = {"prefix": str(prefixes[name]), **(spec.get("manifest") or {})}
    return {"version": 1, **top, "defaults": defaults, "environments": environments}


def _matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    for key, value in expected.items():
        if key == "reason_contains":
            if value not in actual["reason"]:
                return False
        elif actual.get(key) != value:
            return False
    return True


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_scenario(
    path: Path,
    tmp_path: Path,
    wheelhouse: Path,
    channel: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = path.read_text(encoding="utf-8")
    extra_wheels = (yaml.safe_load(text) or {}).get("wheels") or []
    if extra_wheels:
        wheelhouse = Path(shutil.copytree(wheelhouse, tmp_path / "wheelhouse"))
        for wheel in extra_wheels:
            build_wheel(wheelhouse, wheel["name"], wheel["version"], wheel.get("requires", ()))
    for token, value in {
        "{wheelhouse}": str(wheelhouse),
        "{python}": sys.executable,
        "{python_version}": f"{sys.version_info[0]}.{sys.version_info[1]}",
    }.items():
        text = text.replace(token, value)
    case = yaml.safe_load(text)
    state_dir = tmp_path / "state"
    store = StateStore(state_dir)
    prefixes: dict[str, Path] = {}
    for name, spec in case["environments"].items():
        prefix = tmp_path / name
        prefixes[name] = prefix
        if "image" in spec:
            _build(prefix, spec["image"], wheelhouse, channel)
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(yaml.safe_dump(_manifest(case, prefixes, wheelhouse, channel)))

    for name, spec in case["environments"].items():
        prefix = prefixes[name]
        if "image" not in spec:
            continue
        if spec.get("baseline", True):
            assert (
                main(
                    [
                        "--state-dir",
                        str(state_dir),
                        "baseline",
                        "capture",
                        str(manifest_path),
                        "--env",
                        name,
                        "-q",
                    ]
                )
                == 0
            )
        _hand_changes(prefix, spec.get("after_baseline") or {}, wheelhouse, channel)
        if spec.get("owned"):
            _record_owned(store, prefix, spec["owned"])
        if spec.get("pinned"):
            (prefix / "conda-meta" / "pinned").write_text("\n".join(spec["pinned"]) + "\n")
        if spec.get("frozen"):
            (prefix / "conda-meta" / "frozen").write_text("{}")
    capsys.readouterr()

    expect = case["expect"]
    if expect.get("no_subprocess"):

        def forbidden(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"planning started a process: {args}")

        monkeypatch.setattr(subprocess.Popen, "__init__", forbidden)
    code = main(["--state-dir", str(state_dir), "plan", str(manifest_path), "--json"])
    out, err = capsys.readouterr()
    assert code == expect["exit"], f"exit {code}\nstdout: {out}\nstderr: {err}"
    plan = json.loads(out)
    # Properties of every plan: a refusal blames a requirement that excludes the
    # installed version; every transitive change names its chain.
    jsonschema.validate(plan, PLAN_SCHEMA)
    assert_refusals_quote_excluding_requirements(plan)
    assert_transitive_changes_have_required_by(plan)
    for key, value in (expect.get("summary") or {}).items():
        assert plan["summary"][key] == value, f"summary {key}: {plan['summary']}"
    by_name = {env["name"]: env for env in plan["environments"]}
    for name, wanted in expect["environments"].items():
        env = by_name[name]
        if "resolver_ran" in wanted:
            assert env["resolver_ran"] is wanted["resolver_ran"]
        actual = list(env["changes"])
        assert len(actual) == len(wanted["changes"]), json.dumps(actual, indent=1)
        for change in wanted["changes"]:
            hits = [a for a in actual if _matches(change, a)]
            assert hits, f"{name}: no change matches {change}\nplan: {json.dumps(actual, indent=1)}"
            actual.remove(hits[0])
