"""A saved plan (``apply --plan FILE``) is applied only while it is fresh and within the rules.

Both checks run under the environment locks, on the state just re-read: the
file may be old, and anyone could have edited it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import ReconcilerError, StalePlanError
from reconciler.manifest.model import Manifest
from reconciler.plan.clashes import refuse_clashes
from reconciler.plan.model import EnvironmentPlan, Plan
from reconciler.plan.planner import EnvironmentInputs, requested_names
from reconciler.values import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.plan.clashes import WheelContents

__all__ = ["check_fresh", "read_plan_file", "trusted_plan"]


def check_fresh(saved: Plan, manifest: Manifest, inputs: Sequence[EnvironmentInputs]) -> None:
    """Refuse ``saved`` when the manifest or an environment changed since it was made."""
    if saved.manifest_sha256 != manifest.sha256:
        raise StalePlanError(
            f"stale plan: {manifest.path} changed since the plan was made",
            hint="run `reconciler plan --out FILE` again and review it",
        )
    by_name = {i.env.name: i for i in inputs}
    for env in saved.environments:
        current = by_name[env.name].state.fingerprint
        if current != env.fingerprint:
            raise StalePlanError(
                f"stale plan: environment {env.name!r} ({env.prefix}) changed since the plan "
                "was made; nothing was applied",
                hint="run `reconciler plan --out FILE` again and review it",
            )


def trusted_plan(
    saved: Plan, inputs: Sequence[EnvironmentInputs], wheels: WheelContents | None = None
) -> Plan:
    """A saved plan is a file anyone could edit: hold it to the rules again, under the lock.

    Its pins are recomputed from the live ownership (never taken from the file), it
    may install only what the manifest declares, no change it allows may move a
    managed or foreign package, and (with ``wheels``) none may overwrite one's files.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    from reconciler.names import canonical_name

    by_name = {i.env.name: i for i in inputs}
    trusted = []
    for env_plan in saved.environments:
        item = by_name[env_plan.name]
        problem = ""
        if env_plan.prefix != str(item.env.prefix):
            problem = f"its prefix {env_plan.prefix} is not the manifest's {item.env.prefix}"
        declared = requested_names(item.env) | {"python"}
        packages = item.state.packages()
        for change in env_plan.changes:
            if change.refused or change.action not in (
                "upgrade",
                "downgrade",
                "reinstall",
                "remove",
            ):
                continue
            key = (
                f"conda:{change.name}" if change.manager == "conda" else
                item.state.package_for_dist(change.name)
            )  # fmt: skip
            pkg = packages.get(key)
            if pkg is not None and not item.ownership.may_move(pkg):
                status = item.ownership.status(pkg)
                problem = f"it would {change.action} {status} {pkg.name} {pkg.version}"
        for text in env_plan.pip_requirements:
            try:
                name: str = canonical_name(Requirement(text).name)
            except InvalidRequirement:
                name = text
            if name not in declared:
                problem = f"it installs {text!r}, which the manifest does not declare"
        for spec in env_plan.conda_specs:
            if spec.split()[0].split("=")[0].lower() not in declared:
                problem = f"it installs conda {spec!r}, which the manifest does not declare"
        pinned = item.ownership.pinned_dists(item.state)
        installs = any(c.manager == "pip" and not c.refused for c in env_plan.changes)
        if not problem and installs and item.state.exists:
            left_out = _unheld(item, env_plan, pinned)
            if left_out is not None:
                problem = (
                    f"it leaves the met {left_out!r} out of what is resolved, and the pins "
                    "no longer hold all it needs (what reconciler owns changed since)"
                )
        if not problem and wheels is not None and item.state.exists:
            checked = refuse_clashes(
                item.state, item.ownership, env_plan.changes, wheels, item.env.pip_settings
            )
            clash = next((c for c in checked if c.refused and c not in env_plan.changes), None)
            problem = clash.reason if clash is not None else ""
        if problem:
            raise StalePlanError(
                f"the saved plan for environment {env_plan.name!r} cannot be applied: {problem}",
                hint="the plan file was altered or made for another manifest; make it again with "
                "`reconciler plan --out FILE`",
            )
        trusted.append(
            replace(
                env_plan,
                pip_constraints=item.ownership.pip_pins(item.state, pinned),
                conda_pinned=item.ownership.conda_pins(item.state),
            )
        )
    return replace(saved, environments=tuple(trusted))


def _unheld(
    item: EnvironmentInputs, env_plan: EnvironmentPlan, pinned: frozenset[str]
) -> str | None:
    """A met request the saved plan leaves out of what the installer resolves (held whole
    by the pins when it was made: ``pip_side``) whose installed closure the live pins
    (``pinned``) no longer hold whole, if there is one: the install would resolve the
    others without its requirements."""
    from reconciler.manifest.model import pip_requests
    from reconciler.plan.pip_side import held_whole

    resolved = set(env_plan.pip_requirements)
    left_out = [r for r in pip_requests(item.env) if r.requirement not in resolved]
    held = held_whole(item.state, left_out, pinned)
    return next((text for text, whole in held.items() if not whole), None)


def read_plan_file(path: Path) -> Plan:
    """The plan saved by ``plan --out``; a damaged or altered file is an error naming it.

    Its installer inputs (requirements, pins, specs) are what ``apply`` passes to
    pip, uv and rattler, so they are held to the manifest's own rules: a plan file
    cannot smuggle in an option, a URL or a shell metacharacter.
    """
    import json

    from reconciler.plan.model import validate_plan_document

    hint = "make it again with `reconciler plan MANIFEST --out FILE`"
    try:
        with path.open(encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise ReconcilerError(f"cannot read the saved plan {path}: {exc}", hint=hint) from exc
    problem = validate_plan_document(doc)
    if problem is not None:
        raise ReconcilerError(
            f"{path} is not a plan saved by `reconciler plan --out`: {problem}", hint=hint
        )
    try:
        return Plan.from_json(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReconcilerError(f"cannot read the saved plan {path}: {exc}", hint=hint) from exc
