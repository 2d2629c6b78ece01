"""How a machine differs from its manifest and its image (``reconciler drift``). Changes nothing."""

from __future__ import annotations

from typing import Any

from reconciler.plan.planner import EnvironmentInputs, pip_requests
from reconciler.plan.requirements import (
    applies,
    marker_environment,
    parse_request,
    satisfies,
    unmet,
)
from reconciler.state.environment import Package
from reconciler.state.files import VerifiedFiles
from reconciler.values import value

__all__ = ["KINDS", "Drift", "EnvironmentDrift", "Finding", "drift_environment"]

KINDS = (
    "missing",
    "version-mismatch",
    "managed-changed",
    "foreign",
    "orphaned",
    "broken-requirement",
    "user-site",
)


@value
class Finding:
    """One difference."""

    kind: str
    name: str
    manager: str
    expected: str | None
    actual: str | None
    severity: str  # "error" | "warning" | "info"
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The ``findings[]`` item of ``drift.v1.schema.json``."""
        return {
            "kind": self.kind,
            "name": self.name,
            "manager": self.manager,
            "expected": self.expected,
            "actual": self.actual,
            "severity": self.severity,
            "detail": self.detail,
        }


@value
class EnvironmentDrift:
    """Findings for one environment."""

    name: str
    prefix: str
    findings: tuple[Finding, ...]
    notices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``environments[]`` item of ``drift.v1.schema.json``."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "findings": [f.to_json() for f in self.findings],
            "notices": list(self.notices),
        }


@value
class Drift:
    """Drift of a whole manifest."""

    environments: tuple[EnvironmentDrift, ...]

    @property
    def found(self) -> bool:
        """True when any environment has a finding."""
        return any(e.findings for e in self.environments)

    def summary(self) -> dict[str, int]:
        """Counts per kind and per severity."""
        counts = {kind: 0 for kind in KINDS}
        for severity in ("error", "warning", "info"):
            counts[severity] = 0
        for env in self.environments:
            for finding in env.findings:
                counts[finding.kind] += 1
                counts[finding.severity] += 1
        counts["findings"] = sum(len(e.findings) for e in self.environments)
        return counts

    def to_json(self) -> dict[str, Any]:
        """The document described by ``schemas/drift.v1.schema.json``."""
        return {
            "format_version": "1",
            "environments": [e.to_json() for e in self.environments],
            "summary": self.summary(),
        }


def _declared(inputs: EnvironmentInputs) -> list[Finding]:
    env, state = inputs.env, inputs.state
    findings: list[Finding] = []
    for conda_request in env.conda:
        record = state.conda.get(conda_request.name)
        if record is None:
            findings.append(
                Finding(
                    "missing",
                    conda_request.name,
                    "conda",
                    conda_request.spec,
                    None,
                    "error",
                    f"declared in {conda_request.sources[0]}, not installed",
                )
            )
        elif not inputs.conda_matches.get(conda_request.spec, False):
            findings.append(
                Finding(
                    "version-mismatch",
                    record.name,
                    "conda",
                    conda_request.spec,
                    f"{record.version} ({record.build})",
                    "error",
                    f"declared in {conda_request.sources[0]}",
                )
            )
    marker_env = marker_environment(state.python_version)
    for request in pip_requests(env):
        dist = state.dists.get(request.name)
        req = parse_request(request.requirement)
        if not applies(req, marker_env):
            continue  # its marker excludes this environment: plan installs nothing either
        if dist is None:
            findings.append(
                Finding(
                    "missing",
                    request.name,
                    "pip",
                    request.requirement,
                    None,
                    "error",
                    f"declared in {request.sources[0]}, not installed",
                )
            )
        elif not satisfies(req, dist):
            findings.append(
                Finding(
                    "version-mismatch",
                    request.name,
                    "pip",
                    request.requirement,
                    dist.version,
                    "error",
                    f"declared in {request.sources[0]}",
                )
            )
    return findings


def drift_environment(
    inputs: EnvironmentInputs, verified: VerifiedFiles | None = None
) -> EnvironmentDrift:
    """All findings for one environment (see SPEC "drift --json" for the kinds).

    With ``verified``, a managed distribution whose files differ from the hashes in
    its RECORD is ``managed-changed`` too (:mod:`reconciler.state.files`)."""
    from reconciler.plan.planner import requested_names

    env, state = inputs.env, inputs.state
    if not state.exists:
        return EnvironmentDrift(env.name, str(env.prefix), (_missing_environment(inputs),))
    findings = _declared(inputs)
    declared = requested_names(env)
    packages = state.packages()
    needed = _needed(inputs, declared)
    baseline = None if inputs.image_changed else inputs.baseline
    if baseline is not None:
        for key, expected in sorted(baseline.packages.items()):
            pkg = packages.get(key)
            want = (
                f"{expected['version']} ({expected['build']})"
                if expected.get("build")
                else expected["version"]
            )
            if pkg is None:
                findings.append(
                    Finding(
                        "managed-changed",
                        expected["name"],
                        expected["manager"],
                        want,
                        None,
                        "error",
                        "managed package was removed",
                    )
                )
            elif (pkg.version, pkg.build) != (expected["version"], expected.get("build", "")):
                have = f"{pkg.version} ({pkg.build})" if pkg.build else pkg.version
                findings.append(
                    Finding(
                        "managed-changed",
                        pkg.name,
                        pkg.manager,
                        want,
                        have,
                        "error",
                        f"managed package differs from the baseline of {baseline.captured_at}",
                    )
                )
            elif (
                pkg.dist is not None
                and pkg.manager == "conda"
                and pkg.dist.directory not in inputs.state.details[pkg.name].dists
            ):
                # pip/uv replaced the distribution this conda package ships; its
                # conda-meta record is stale (NOTES "Conda prefixes").
                findings.append(
                    Finding(
                        "managed-changed",
                        pkg.name,
                        pkg.manager,
                        want,
                        pkg.dist.version,
                        "error",
                        f"{pkg.dist.display_name} {pkg.dist.version} installed by "
                        f"{pkg.dist.installer or 'another installer'} replaced the files of "
                        f"conda package {pkg.name} {pkg.version}; its conda-meta record is stale",
                    )
                )
            elif verified is not None and pkg.dist is not None:
                findings += _changed_files(pkg, want, verified.changed_files(state, pkg.dist))
        for key, pkg in sorted(packages.items()):
            dist_name = pkg.dist.name if pkg.dist else pkg.name
            if key in baseline.packages or key in inputs.owned.packages:
                continue
            # What a declared package requires is accounted for by the manifest (after
            # `adopt` writes the top-level packages installed by hand, their
            # dependencies are not reported either).
            if needed & {pkg.name, dist_name}:
                continue
            findings.append(
                Finding(
                    "foreign",
                    pkg.name,
                    pkg.manager,
                    None,
                    pkg.version,
                    "warning",
                    "installed outside reconciler and not in the manifest",
                )
            )
    for key, owned in sorted(inputs.owned.packages.items()):
        if owned.name not in needed and key in packages:
            findings.append(
                Finding(
                    "orphaned",
                    owned.name,
                    owned.manager,
                    None,
                    packages[key].version,
                    "info",
                    "installed by reconciler, no longer in the manifest "
                    "(reconciler never uninstalls; remove it by hand if unused)",
                )
            )
    marker_env = marker_environment(state.python_version)
    for parent, text in unmet(((d, frozenset()) for d in state.dists), state.dists, marker_env):
        findings.append(
            Finding(
                "broken-requirement",
                parent,
                "pip",
                text,
                _installed_version(inputs, text),
                "warning",
                f"{parent} requires {text}",
            )
        )
    for name, dist in sorted(state.user_site.items()):
        shadows = name in state.dists
        findings.append(
            Finding(
                "user-site",
                name,
                "pip",
                state.dists[name].version if shadows else None,
                dist.version,
                "warning" if shadows else "info",
                f"~/.local user site has {dist.display_name} {dist.version}"
                + (
                    " and shadows the environment's copy"
                    if shadows
                    else "; it is importable from this environment"
                ),
            )
        )
    return EnvironmentDrift(env.name, str(env.prefix), tuple(findings), inputs.notices)


def _missing_environment(inputs: EnvironmentInputs) -> Finding:
    """The whole environment is missing: one error, not a list of missing packages."""
    env = inputs.env
    conda = env.create.python is not None if env.create is not None else bool(env.conda)
    if env.create is not None:
        todo = "`reconciler apply` creates it"
    else:
        todo = 'fix the prefix, or add `create: {python: "3.11"}` or `create: {venv: PYTHON}`'
    return Finding(
        "missing",
        env.name,
        "conda" if conda else "pip",
        None,
        None,
        "error",
        f"the environment's prefix {env.prefix} does not exist; {todo}",
    )


def _changed_files(pkg: Package, want: str, paths: list[str]) -> list[Finding]:
    """One finding per package whose files differ from their RECORD hashes."""
    if not paths or pkg.dist is None:
        return []
    more = f" (and {len(paths) - 3} more)" if len(paths) > 3 else ""
    return [
        Finding(
            "managed-changed",
            pkg.name,
            pkg.manager,
            want,
            want,
            "error",
            f"{', '.join(paths[:3])}{more} of {pkg.dist.display_name} {pkg.dist.version} "
            "changed: the content differs from the hash in its RECORD",
        )
    ]


def _needed(inputs: EnvironmentInputs, declared: set[str]) -> set[str]:
    """The declared packages and everything they require, transitively (pip
    ``Requires-Dist`` and conda ``depends``): an owned dependency is not an orphan."""
    from reconciler.names import canonical_name
    from reconciler.plan.requirements import applies, parse

    state = inputs.state
    env = marker_environment(state.python_version)
    needed: set[str] = set()
    stack = list(declared)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        dist = state.dists.get(name)
        if dist is None and name in state.conda:
            owner = next((d for d, c in state.dist_owner.items() if c == name), None)
            dist = state.dists.get(owner) if owner else None
        for text in dist.requires if dist is not None else ():
            req = parse(text)
            if req is not None and applies(req, env):
                stack.append(canonical_name(req.name))
        details = state.details.get(name)
        for dep in details.depends if details is not None else ():
            stack.append(dep.split()[0].lower())
    return needed


def _installed_version(inputs: EnvironmentInputs, requirement: str) -> str | None:
    from reconciler.names import canonical_name
    from reconciler.plan.requirements import parse

    req = parse(requirement)
    dist = inputs.state.dists.get(canonical_name(req.name)) if req else None
    return dist.version if dist else None
