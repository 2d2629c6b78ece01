"""Safe YAML -> plain Python values, remembering where each value came from.

:func:`read_document` reads the usual manifest without PyYAML
(:mod:`reconciler.manifest.yaml_fast`) and gives every other text to PyYAML
(:mod:`reconciler.manifest.yaml_compose`), which no YAML constructor runs in and which
refuses what a manifest never needs and what makes YAML dangerous: anchors and aliases
(exponential expansion), tags beyond the core schema (object construction), duplicate
and non-string keys.
"""

from __future__ import annotations

from reconciler.errors import Problem
from reconciler.values import field, value

__all__ = ["Document", "ManifestPath", "format_path", "read_document"]

TYPE_CHECKING = False  # typing is not imported at run time (a plan's manifest is read first)
if TYPE_CHECKING:
    from typing import Union

    #: A location in the manifest: mapping keys and list indices from the root.
    ManifestPath = tuple[Union[str, int], ...]
else:
    ManifestPath = tuple  # (what the checker reads is above)


def format_path(path: ManifestPath) -> str:
    """``("environments", "dl", "pip", 2)`` -> ``environments.dl.pip[2]``; root -> ``""``.

    A key that is not plain printable text (a line break, an escape sequence) is
    shown quoted and escaped, ``environments['dl\\n']``, so that an error message is
    one line and cannot drive the terminal.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.isprintable() or not part:
            text += f"[{part!r}]"
        else:
            text += f".{part}" if text else part
    return text


@value(frozen=False)
class Document:
    """A manifest's values, their positions (1-based) and the problems found so far.

    ``marks`` maps a path to its value's position and ``ends`` to where the value
    ends (the position just after it), ``key_marks`` a mapping entry's path to its
    key's position, ``sources`` a scalar's path to its text as
    written. ``invalid`` holds paths already reported, so later checks skip them.
    """

    file: str
    data: object = None
    marks: dict[ManifestPath, tuple[int, int]] = field(default_factory=dict)
    ends: dict[ManifestPath, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[ManifestPath, tuple[int, int]] = field(default_factory=dict)
    sources: dict[ManifestPath, str] = field(default_factory=dict)
    invalid: set[ManifestPath] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    #: Parsed conda specs remembered between runs (see ``loader.ValidationMemo``).
    conda_memo: dict[str, tuple[str, str | None, bool]] = field(default_factory=dict)

    def position(self, path: ManifestPath, *, key: bool = False) -> tuple[int, int]:
        """Where ``path`` is written (its key with ``key=True``), else its nearest ancestor."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        for end in range(len(path), -1, -1):
            if path[:end] in self.marks:
                return self.marks[path[:end]]
        return (1, 1)

    def report(self, path: ManifestPath, message: str, *, key: bool = False) -> None:
        """Record a problem at ``path``; the path is not checked again."""
        line, column = self.position(path, key=key)
        self.problems.append(Problem(self.file, line, column, format_path(path), message))
        self.invalid.add(path)


def read_document(text: str, file: str) -> Document:
    """Compose ``text`` as one YAML document; raises ManifestError when it is not usable YAML.

    Problems that leave the rest readable (tags, keys) are recorded in the
    returned document instead, so that one run reports them all.
    """
    from reconciler.manifest.yaml_fast import read_simple

    document = read_simple(text, file)
    if document is not None:
        return document
    from reconciler.manifest.yaml_compose import compose_document

    return compose_document(text, file)
