"""Merging the requirement strings of one environment into one request per package.

The strings come from the environment and from ``all:``, each already parsed and
checked on its own (:mod:`reconciler.manifest.specs`). Compatible specs for one
package are intersected; specs no version can satisfy, or too complex to check,
are conflicts, reported at the environment's own string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import suppress

from reconciler.manifest.model import CondaRequest, PipRequest
from reconciler.manifest.yaml_nodes import ManifestPath, format_path
from reconciler.names import canonical_name
from reconciler.pep508 import ParsedRequirement
from reconciler.values import field, value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

__all__ = [
    "MAX_MERGED_CLAUSES",
    "CondaEntry",
    "Conflict",
    "PipEntry",
    "merge_conda",
    "merge_pip",
]

#: The most version clauses two or more strings for one package may have once merged:
#: checking that a merged spec is satisfiable costs the square of its clauses.
MAX_MERGED_CLAUSES = 32


@value
class PipEntry:
    """One pip string of the manifest, parsed."""

    text: str
    path: ManifestPath
    requirement: ParsedRequirement


@value
class CondaEntry:
    """One conda string of the manifest, parsed: ``plain`` when it is only a name and a version."""

    text: str
    path: ManifestPath
    name: str
    version: str | None
    plain: bool


@value
class Conflict:
    """Two strings for one package that cannot be merged, reported at ``path``."""

    path: ManifestPath
    message: str


@value(frozen=False)
class _Merged:
    name: str
    text: str
    sources: list[ManifestPath]
    extras: set[str] = field(default_factory=set)
    #: The first string's requirement, and the merged specifier once a second string
    #: for the package is merged in (``packaging.specifiers`` is imported only then).
    first: ParsedRequirement | None = None
    specifier: SpecifierSet | None = None
    marker: str | None = None
    version: str | None = None
    plain: bool = True


def merge_pip(entries: Iterable[PipEntry]) -> tuple[tuple[PipRequest, ...], list[Conflict]]:
    """One request per canonical name, in order of first appearance, and the conflicts."""
    merged: dict[str, _Merged] = {}
    conflicts: list[Conflict] = []
    for entry in entries:
        requirement = entry.requirement
        marker = requirement.marker
        name = canonical_name(requirement.name)
        current = merged.get(name)
        if current is None:
            merged[name] = _Merged(
                name,
                entry.text.strip(),
                [entry.path],
                set(requirement.extras),
                requirement,
                None,
                marker,
            )
            continue
        if marker != current.marker:
            conflicts.append(
                _conflict(
                    current,
                    entry.text,
                    entry.path,
                    "their environment markers differ, so they cannot be "
                    "merged into one requirement",
                )
            )
            continue
        if current.specifier is None:
            assert current.first is not None  # (a pip entry always keeps its first string's)
            current.specifier = current.first.specifier
        specifier = current.specifier & requirement.specifier
        if len(specifier) > MAX_MERGED_CLAUSES:
            conflicts.append(_conflict(current, entry.text, entry.path, _too_many(len(specifier))))
            continue
        if not _pip_satisfiable(specifier):
            conflicts.append(
                _conflict(current, entry.text, entry.path, "no version satisfies both")
            )
            continue
        extras = current.extras | set(requirement.extras)
        if specifier != current.specifier or extras != current.extras:
            extra_text = f"[{','.join(sorted(extras))}]" if extras else ""
            current.text = f"{requirement.name}{extra_text}{specifier}"
            current.text += f"; {marker}" if marker else ""
        current.specifier, current.extras = specifier, extras
        current.sources.append(entry.path)
    requests = tuple(
        PipRequest(m.name, m.text, tuple(format_path(p) for p in m.sources))
        for m in merged.values()
    )
    return requests, conflicts


def merge_conda(entries: Iterable[CondaEntry]) -> tuple[tuple[CondaRequest, ...], list[Conflict]]:
    """One request per conda name, in order of first appearance, and the conflicts."""
    merged: dict[str, _Merged] = {}
    conflicts: list[Conflict] = []
    for entry in entries:
        current = merged.get(entry.name)
        if current is None:
            merged[entry.name] = _Merged(
                entry.name,
                entry.text.strip(),
                [entry.path],
                version=entry.version,
                plain=entry.plain,
            )
            continue
        if entry.text.strip() != current.text:
            if not (entry.plain and current.plain):
                conflicts.append(
                    _conflict(
                        current,
                        entry.text,
                        entry.path,
                        "only specs made of a name and a version can be merged; write one spec",
                    )
                )
                continue
            version = _conda_and(current.version, entry.version)
            clauses = len(re.split(r"[,|]", version)) if version is not None else 0
            if clauses > MAX_MERGED_CLAUSES:
                conflicts.append(_conflict(current, entry.text, entry.path, _too_many(clauses)))
                continue
            if version is not None and not _conda_satisfiable(version):
                conflicts.append(
                    _conflict(current, entry.text, entry.path, "no version satisfies both")
                )
                continue
            if version != current.version:
                current.text = f"{entry.name} {version}"
            current.version = version
        current.sources.append(entry.path)
    requests = tuple(
        CondaRequest(m.name, m.text, tuple(format_path(p) for p in m.sources))
        for m in merged.values()
    )
    return requests, conflicts


def _too_many(clauses: int) -> str:
    return (
        f"merged, they have {clauses} version clauses; at most {MAX_MERGED_CLAUSES} are "
        "merged, write one requirement with a simple range"
    )


def _conflict(current: _Merged, text: str, path: ManifestPath, reason: str) -> Conflict:
    """Report at the environment's own string: ``all:`` is shared, the environment is odd."""
    if path[:1] == ("all",):
        own = next((source for source in current.sources if source[:1] != ("all",)), None)
        if own is not None:
            return Conflict(
                own,
                f"{current.text!r} conflicts with {text.strip()!r} ({format_path(path)}): {reason}",
            )
    sources = ", ".join(format_path(source) for source in current.sources)
    return Conflict(path, f"{text.strip()!r} conflicts with {current.text!r} ({sources}): {reason}")


def _pip_satisfiable(specifier: SpecifierSet) -> bool:
    """Whether some version satisfies ``specifier``, trying the versions it names and neighbours."""
    from packaging.version import InvalidVersion, Version

    literals: list[str] = []
    for spec in specifier:
        literals.append(spec.version[:-2] if spec.version.endswith(".*") else spec.version)
    releases = []
    for literal in literals:
        with suppress(InvalidVersion):  # '===' arbitrary strings: tried as written
            releases.append(Version(literal).release)
    candidates = [*literals, *(_text(r) for r in _neighbours(releases))]
    return any(specifier.contains(candidate, prereleases=True) for candidate in candidates)


def _conda_and(first: str | None, second: str | None) -> str | None:
    if first is None or first == second:
        return second
    if second is None:
        return first
    # ',' binds tighter than '|' in conda: group an "or" before adding to it.
    return ",".join(f"({v})" if "|" in v else v for v in (first, second))


def _conda_satisfiable(version_spec: str) -> bool:
    try:
        from rattler import Version, VersionSpec
    except ImportError:
        return True  # cannot tell without py-rattler; the solver will
    try:
        spec = VersionSpec(version_spec)
    except Exception:
        return True  # not ours to judge; the solver reports it
    literals = [token.rstrip(".*") for token in re.findall(r"[0-9][0-9A-Za-z_.+!*]*", version_spec)]
    releases = []
    for literal in literals:
        if re.fullmatch(r"[0-9]+(\.[0-9]+)*", literal):
            releases.append(tuple(int(part) for part in literal.split(".")))
    for candidate in [*literals, *(_text(r) for r in _neighbours(releases))]:
        try:
            if spec.matches(Version(candidate)):
                return True
        except Exception:  # a literal that is not a version: try the next one
            continue
    return False


def _neighbours(releases: list[tuple[int, ...]]) -> Iterator[tuple[int, ...]]:
    """Release tuples just below, between and just above ``releases``: enough to find a witness."""
    yield (0,)
    ordered = sorted(set(releases))
    for index, release in enumerate(ordered):
        yield release
        width = max(len(release), len(ordered[index + 1]) if index + 1 < len(ordered) else 0)
        yield release + (0,) * (width - len(release)) + (1,)  # just above, below the next
        yield (*release[:-1], release[-1] + 1)
        yield (release[0] + 1,)
        nonzero = [i for i, part in enumerate(release) if part]
        if nonzero:
            last = nonzero[-1]
            yield (*release[:last], release[last] - 1, 999999)  # just below


def _text(release: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in release)
