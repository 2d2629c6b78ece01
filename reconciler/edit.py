"""``add``, ``remove`` and ``adopt``: change the manifest, through the same plan and apply.

``add`` plans the manifest as it would be with the new specs (the edited text,
validated, never written first), applies that plan with :func:`reconciler.apply.
execute.apply` and writes the specs only once the apply succeeded. A refused or
failed plan leaves the file byte-identical. ``remove`` only edits the file.
``adopt`` reads drift's ``foreign`` findings and writes the top-level ones as
``name==version``. Nothing here prints; :mod:`reconciler.cli` renders the results.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import ManifestError, ReconcilerError
from reconciler.manifest.model import Environment, Manifest
from reconciler.manifest.writer import (
    ListEdit,
    ManifestSource,
    Side,
    edit_manifest,
    entry_name,
    read_source,
    unified_diff,
    write_manifest,
)
from reconciler.values import value

if TYPE_CHECKING:
    from reconciler.apply.execute import ApplyResult
    from reconciler.apply.report import Reporter
    from reconciler.plan.model import Plan
    from reconciler.state.environment import InstalledState
    from reconciler.state.store import StateStore

__all__ = [
    "AddResult",
    "AdoptResult",
    "NewSpec",
    "RemoveResult",
    "add",
    "adopt",
    "choose_environment",
    "kernel_environment",
    "parse_specs",
    "remove",
]


@value
class NewSpec:
    """One spec given to ``add``: ``bare`` when it names no version (``polars``)."""

    text: str
    name: str
    side: Side
    bare: bool


@value
class AddResult:
    """What ``add`` did. ``written`` is empty when the manifest was not changed."""

    env: str
    plan: Plan
    applied: ApplyResult | None
    written: tuple[str, ...]
    replaced: tuple[str, ...]
    shared: tuple[str, ...]  # names also declared in ``all:`` (both apply)

    @property
    def refused(self) -> bool:
        """The plan refused a change: nothing was installed or written."""
        return self.plan.refused

    @property
    def failed(self) -> bool:
        """The apply failed: nothing was written."""
        return self.applied is not None and self.applied.failed


@value
class RemoveResult:
    """Entries dropped from ``environments.<env>`` and which of them reconciler installed."""

    env: str
    removed: tuple[str, ...]
    owned: tuple[str, ...]


@value
class AdoptResult:
    """Foreign packages written (or, with ``dry_run``, shown) as ``name==version``."""

    env: str
    adopted: tuple[str, ...]
    dependencies: tuple[str, ...]  # foreign, but required by another foreign package
    diff: str
    written: bool
    notices: tuple[str, ...]


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def kernel_environment(manifest: Manifest, prefix: str | None = None) -> Environment | None:
    """The environment whose prefix is ``prefix`` (default: the running ``sys.prefix``)."""
    here = Path(prefix or sys.prefix)
    matches = [e for e in manifest.environments if _same_path(e.prefix, here)]
    return matches[0] if len(matches) == 1 else None


def choose_environment(manifest: Manifest, name: str | None) -> Environment:
    """``--env NAME``; without it the only environment, or the one this interpreter runs in."""
    from reconciler.manifest.model import select_environments

    if name:
        return select_environments(manifest, [name])[0]
    names = ", ".join(e.name for e in manifest.environments)
    if len(manifest.environments) == 1:
        return manifest.environments[0]
    here = kernel_environment(manifest)
    if here is not None:
        return here
    raise ReconcilerError(
        f"{manifest.path} has {len(manifest.environments)} environments and none is the "
        f"running interpreter's ({sys.prefix}); choose one with --env NAME",
        hint=f"environments: {names}",
    )


def parse_specs(specs: Sequence[str], side: Side) -> list[NewSpec]:
    """Check the specs given on the command line with the manifest's own rules."""
    from reconciler.manifest.specs import SpecError, parse_conda, parse_pip

    out: list[NewSpec] = []
    for text in specs:
        try:
            if side == "pip":
                req = parse_pip(text)
                bare = not req.spec and req.url is None
            else:
                _, version, plain = parse_conda(text)
                bare = version is None and plain
            name = entry_name(side, text)
        except SpecError as exc:
            raise ReconcilerError(
                f"{text!r}: {exc}", hint="give a package name, optionally with a version"
            ) from None
        if any(s.name == name for s in out):
            raise ReconcilerError(f"{name} is given twice", hint="give each package once")
        out.append(NewSpec(text.strip(), name, side, bare))
    if not out:
        raise ReconcilerError("nothing to add", hint="reconciler add MANIFEST SPEC...")
    return out


def _with_version(spec: NewSpec, version: str | None) -> str:
    """A bare name with the installed version as lower bound (``polars>=1.31.0``)."""
    if not spec.bare or not version:
        return spec.text
    if spec.side == "conda":
        return f"{spec.text}>={version}"
    from packaging.requirements import Requirement

    req = Requirement(spec.text)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{req.name}{extras}>={version}{marker}"


def _declared(source: ManifestSource, env: str, side: Side) -> list[str]:
    import yaml

    data = yaml.safe_load(source.text) or {}
    where = data["environments"][env] if env else data.get("all") or {}
    items = (where or {}).get(side) or []
    return [str(x) for x in items]


def _installed_version(state: InstalledState, spec: NewSpec) -> str | None:
    if spec.side == "conda":
        record = state.conda.get(spec.name)
        return record.version if record else None
    dist = state.dists.get(spec.name)
    return dist.version if dist else None


def add(
    manifest: Manifest,
    store: StateStore,
    specs: Sequence[NewSpec],
    env: Environment,
    *,
    no_apply: bool = False,
    reporter: Reporter | None = None,
    log: Path | None = None,
    lock_timeout: float = 300.0,
) -> AddResult:
    """Plan (and unless ``no_apply``, apply) the manifest with ``specs`` added, then write it."""
    from reconciler.manifest.loader import load_manifest_text
    from reconciler.plan.planner import Backends, build_plan, read_inputs
    from reconciler.plan.requirements import version_or_none
    from reconciler.state.environment import read_state

    source = read_source(manifest.path)
    side = specs[0].side

    def edited(texts: dict[str, str]) -> str:
        return edit_manifest(source, [ListEdit(env.name, side, texts)])

    planned_text = edited({s.name: s.text for s in specs})
    try:
        planned = load_manifest_text(planned_text, manifest.path)
    except ManifestError as exc:  # its lines are the edited text's: name the paths only
        problems = "; ".join(
            f"{p.path}: {p.message}" if p.path else p.message for p in exc.problems
        )
        raise ReconcilerError(
            f"cannot add {', '.join(s.text for s in specs)} to environments.{env.name}.{side}: "
            f"{problems}; nothing was changed",
            hint="give a spec compatible with the rest of the manifest",
        ) from None
    applied = None
    if no_apply:
        plan = build_plan(planned, read_inputs(planned, store, [env.name]), Backends.default())
    else:
        from reconciler.apply.execute import apply

        applied = apply(
            planned,
            store,
            Backends.default(),
            names=[env.name],
            reporter=reporter,
            log=log,
            lock_timeout=lock_timeout,
        )
        plan = applied.plan
    existing = [
        t
        for t in _declared(source, env.name, side)
        if entry_name(side, t) in {s.name for s in specs}
    ]
    shared = tuple(
        sorted({entry_name(side, t) for t in _declared(source, "", side)} & {s.name for s in specs})
    )
    if plan.refused or (applied is not None and applied.failed):
        return AddResult(env.name, plan, applied, (), (), shared)
    state = read_state(env.prefix)
    versions: dict[str, str | None] = {}
    for spec in specs:
        versions[spec.name] = _installed_version(state, spec)
        for change in plan.environments[0].changes if no_apply and plan.environments else ():
            version = change.to_version or ""
            named = (change.name, change.manager) == (spec.name, side)
            if named and version_or_none(version) is not None:
                versions[spec.name] = version
    final = {s.name: _with_version(s, versions[s.name]) for s in specs}
    write_manifest(source, edited(final))
    return AddResult(env.name, plan, applied, tuple(final.values()), tuple(existing), shared)


def remove(
    manifest: Manifest, store: StateStore, names: Sequence[str], env: Environment
) -> RemoveResult:
    """Drop the entries for ``names`` from the environment's own lists; installs nothing."""
    from reconciler.names import canonical_name

    source = read_source(manifest.path)
    wanted = {n: canonical_name(n) for n in names}
    edits: list[ListEdit] = []
    found: set[str] = set()
    for side in ("pip", "conda"):
        declared = {entry_name(side, t) for t in _declared(source, env.name, side)}
        hits = frozenset(
            key
            for n, canonical in wanted.items()
            for key in (canonical, n.lower())
            if key in declared
        )
        if hits:
            edits.append(ListEdit(env.name, side, drop=hits))
            found |= {n for n, c in wanted.items() if c in hits or n.lower() in hits}
    missing = [n for n in names if n not in found]
    if missing:
        shared = [
            n
            for n in missing
            for side in ("pip", "conda")
            if wanted[n] in {entry_name(side, t) for t in _declared(source, "", side)}
        ]
        if shared:
            raise ReconcilerError(
                f"{', '.join(shared)} is declared in all: (every environment), not in "
                f"environments.{env.name}; nothing was changed",
                hint=f"remove it from all: in {manifest.path} by hand if no environment needs it",
            )
        raise ReconcilerError(
            f"{', '.join(missing)}: not declared in environments.{env.name} of {manifest.path}; "
            "nothing was changed",
            hint="`reconciler plan MANIFEST` lists what each environment declares",
        )
    write_manifest(source, edit_manifest(source, edits))
    owned = store.owned(env.prefix)
    owned_names = {p.name for p in owned.packages.values()}
    return RemoveResult(
        env.name,
        tuple(names),
        tuple(n for n in names if wanted[n] in owned_names or n.lower() in owned_names),
    )


def adopt(manifest: Manifest, store: StateStore, env: Environment, *, dry_run: bool) -> AdoptResult:
    """Write the top-level foreign packages of ``env`` into the manifest as ``name==version``."""
    from reconciler.plan.drift import drift_environment
    from reconciler.plan.planner import read_inputs

    (inputs,) = read_inputs(manifest, store, [env.name])
    drift = drift_environment(inputs)
    foreign = [f for f in drift.findings if f.kind == "foreign"]
    required = _required_by_others(inputs.state, {(f.manager, f.name) for f in foreign})
    top = [f for f in foreign if f.name not in required]
    deps = tuple(sorted(f.name for f in foreign if f.name in required))
    edits = []
    for side in ("conda", "pip"):
        put = {
            f.name: _pin(f.name, f.actual or "") if side == "pip" else f"{f.name}=={f.actual}"
            for f in top
            if f.manager == side
        }
        if put:
            edits.append(ListEdit(env.name, side, put))
    adopted = tuple(sorted(f"{f.name}=={f.actual}" for f in top))
    notices = drift.notices
    if not edits:
        return AdoptResult(env.name, (), deps, "", False, notices)
    source = read_source(manifest.path)
    text = edit_manifest(source, edits)
    if dry_run:
        from reconciler.manifest.loader import load_manifest_text

        load_manifest_text(text, manifest.path)
        return AdoptResult(env.name, adopted, deps, unified_diff(source, text), False, notices)
    diff = unified_diff(source, text)
    write_manifest(source, text)
    return AdoptResult(env.name, adopted, deps, diff, True, notices)


def _pin(name: str, version: str) -> str:
    from reconciler.plan.requirements import version_or_none

    return f"{name}=={version}" if version_or_none(version) is not None else f"{name}==={version}"


def _required_by_others(state: InstalledState, foreign: set[tuple[str, str]]) -> set[str]:
    """Names of foreign packages that another foreign package requires (pip or conda)."""
    from reconciler.plan.requirements import applies, marker_environment, parse

    env = marker_environment(state.python_version)
    packages = state.packages()
    required: set[str] = set()
    for manager, name in foreign:
        pkg = packages.get(f"{manager}:{name}")
        if pkg is None:
            continue
        for text in pkg.dist.requires if pkg.dist is not None else ():
            req = parse(text)
            if req is not None and applies(req, env):
                dep = req.key
                dep = state.dist_owner.get(dep, dep)
                if dep != name:
                    required.add(dep)
        details = state.details.get(name) if manager == "conda" else None
        for dep_spec in details.depends if details is not None else ():
            if dep_spec.split()[0].lower() != name:
                required.add(dep_spec.split()[0].lower())
    return required
