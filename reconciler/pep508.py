"""PEP 508 requirement strings, parsed the way ``packaging.requirements`` parses them.

``import packaging.requirements`` costs ~30 ms (its tokenizer, markers and tags pull in
``dataclasses``, ``inspect``, ``ast``, ``logging`` and ``platform``): more than a plan
of a just-edited manifest spends on anything else. Most strings written in manifests
and the ``Requires-Dist`` of wheels without markers are simple: a name, extras, and
clauses of versions in PEP 440's usual form (``numpy>=1.26``, ``polars[pyarrow]>=1,<2``,
``pandas==2.2.*``, ``black==24.1.0rc1``), no two with the same operator.
:func:`parse_simple` reads exactly those, giving what packaging gives; anything else
(markers, URLs, epochs, local versions, uppercase or other spellings packaging
normalises, parentheses, two clauses with one operator, which packaging may merge)
is left to packaging by :func:`parse`. ``tests/test_pep508.py`` compares both on many
strings.
"""

from __future__ import annotations

import re

from reconciler.names import canonical_name
from reconciler.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

__all__ = ["ParsedRequirement", "parse", "parse_by_packaging", "parse_simple"]


@value
class ParsedRequirement:
    """What a PEP 508 requirement says, as ``packaging.requirements.Requirement`` renders
    it: ``spec`` and ``marker`` are the ``str()`` forms of its specifier (clauses
    sorted) and marker ("" and None when absent); ``written`` its clauses in the order
    written, which is the order packaging (26 and later) iterates a fresh requirement's
    specifier in."""

    name: str  # as written
    extras: frozenset[str]
    spec: str
    marker: str | None
    url: str | None
    written: str

    @property
    def key(self) -> str:
        """The canonical project name."""
        return canonical_name(self.name)

    @property
    def specifier(self) -> SpecifierSet:
        """A new ``SpecifierSet`` of the clauses in the order written (its ``str()``
        sorts them in place: this one is nobody else's)."""
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(self.written)

    def pins_exactly(self) -> bool:
        """Has it an ``==`` or ``===`` clause?"""
        return any(clause.startswith("==") for clause in self.spec.split(","))


_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
#: One clause: an operator and a version in PEP 440's usual form (a release, then
#: ``a``/``b``/``rc``, ``.post`` and ``.dev`` parts, lowercase; no epoch, no local
#: part); ``.*`` after a release alone and ``==``/``!=`` only, two release parts at
#: least after ``~=`` (PEP 440's own rules). Whitespace is PEP 508's (spaces and tabs),
#: as packaging's tokenizer reads it.
_CLAUSE = (
    r"[ \t]*(~=|==|!=|<=|>=|<|>)[ \t]*([0-9]+(?:\.[0-9]+)*)"
    r"((?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?)(\.\*)?[ \t]*"
)
_SIMPLE = (
    rf"[ \t]*(?P<name>{_NAME})[ \t]*"
    rf"(?:\[[ \t]*(?P<extras>{_NAME}(?:[ \t]*,[ \t]*{_NAME})*)?[ \t]*\])?"
    r"(?P<clauses>[^\[\];@()\n\r]*)"
)
_EXTRA_SPLIT = r"[ \t]*,[ \t]*"
#: The patterns compiled, at the first parse (a warm plan parses nothing: ~1 ms saved).
_compiled: list[re.Pattern[str]] = []


def _patterns() -> list[re.Pattern[str]]:
    if not _compiled:
        _compiled[:] = [re.compile(p) for p in (_SIMPLE, _CLAUSE, _EXTRA_SPLIT)]
    return _compiled


def parse_simple(text: str) -> ParsedRequirement | None:
    """``text`` parsed without packaging when it is a simple requirement, else None
    (None says nothing of its validity: ask :func:`parse_by_packaging`)."""
    simple, clause_pattern, extra_split = _patterns()
    match = simple.fullmatch(text)
    if match is None:
        return None
    clauses: list[str] = []
    operators: set[str] = set()
    rest = match["clauses"]
    if rest.strip(" \t"):
        for part in rest.split(","):
            clause = clause_pattern.fullmatch(part)
            if clause is None:
                return None
            operator, release, suffix, star = clause.groups()
            if star and (suffix or operator not in ("==", "!=")):
                return None
            if operator == "~=" and "." not in release:
                return None
            if operator in operators:
                return None  # packaging drops a clause equal to another (>=1,>=1.0)
            operators.add(operator)
            clauses.append(f"{operator}{release}{suffix}{star or ''}")
    extras = match["extras"]
    return ParsedRequirement(
        match["name"],
        frozenset(extra_split.split(extras)) if extras else frozenset(),
        ",".join(sorted(clauses)),
        None,
        None,
        ",".join(clauses),
    )


def parse_by_packaging(text: str) -> ParsedRequirement:
    """packaging's parse of ``text`` (its ``InvalidRequirement`` when not PEP 508)."""
    from packaging.requirements import Requirement

    req = Requirement(text)
    written = ",".join(str(clause) for clause in req.specifier)  # before str() sorts them
    marker = str(req.marker) if req.marker is not None else None
    spec = str(req.specifier)
    return ParsedRequirement(req.name, frozenset(req.extras), spec, marker, req.url, written)


def parse(text: str) -> ParsedRequirement:
    """``text`` parsed, by :func:`parse_simple` when it can, else by packaging (whose
    ``InvalidRequirement`` says it is not PEP 508)."""
    return parse_simple(text) or parse_by_packaging(text)
