"""The usual manifest's YAML, read without PyYAML: the same :class:`Document`, or None.

Importing PyYAML costs about 20 ms (most of it compiling the regular expression
``yaml.reader`` checks characters with) and composing a manifest with its pure-Python
scanner about 10 ms more: a third of a ``plan`` whose manifest was just edited.
Manifests are nearly always written in one small part of YAML: block mappings and
sequences, single-line plain or quoted scalars, single-line flow sequences and mappings
of scalars, comments. :func:`read_simple` reads exactly that part and gives the
:class:`~reconciler.manifest.yaml_nodes.Document` that
:func:`~reconciler.manifest.yaml_nodes.read_document` gives: the same values, marks,
ends, key marks and sources. Anything else, a text it might read differently and
every text with a problem included (duplicate keys, tags, anchors, tabs, non-ASCII,
multi-line scalars, floats, ...), gives None, and PyYAML reads it and words its errors.

How a plain scalar resolves follows PyYAML's ``SafeLoader`` (YAML 1.1): its implicit
resolvers, tried for the scalar's first character in their order. The tests compare
both readers on every manifest of the repository, on random documents of this part and
on mutations of them: wherever this one answers, the answers are equal.
"""

from __future__ import annotations

import re

from reconciler.manifest.yaml_nodes import Document, ManifestPath

__all__ = ["read_simple"]

#: YAML 1.1 booleans (PyYAML's ``bool`` resolver and ``SafeConstructor.bool_values``).
_BOOLEANS = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_NULLS = frozenset(("~", "null", "Null", "NULL"))
#: Plain scalars starting with one of these may be numbers or timestamps.
_NUMERIC_START = frozenset("-+0123456789.")
#: Every character the patterns below can match: a scalar with another is a string.
_NUMERIC_CHARS = frozenset("0123456789-+._:eEbxXabcdefABCDEFinfINFaNTtZ ")
#: PyYAML's float, int and timestamp resolvers, in its order (compiled when a plain
#: scalar starts with a character of :data:`_NUMERIC_START`).
_NUMERIC_PATTERNS = (
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+
    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
    r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
     (?:[Tt]|[ \t]+)[0-9][0-9]?
     :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
)
_numeric: list[re.Pattern[str]] = []
#: A plain scalar may not start with these (``-`` may, before a non-space: see _plain).
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_STOPS = frozenset(",[]{}?:")


class _Outside(Exception):
    """The text is outside the part of YAML this module reads."""


def read_simple(text: str, file: str) -> Document | None:
    """``read_document(text, file)`` when ``text`` is in the usual part of YAML, else None."""
    if not text.isascii() or not text.replace("\n", "").isprintable():
        return None  # tabs, carriage returns, control and non-ASCII characters
    try:
        return _Reader(text, file).document()
    except (_Outside, RecursionError):  # too deep: PyYAML's to report
        return None


def _resolve(plain: str) -> object:
    """The value of a non-empty plain scalar as PyYAML's SafeLoader has it (its text for a
    string); raises :class:`_Outside` for what the builder would not keep as a string,
    null, boolean or decimal integer."""
    first = plain[0]
    if first in "yYnNtTfFoO" and plain in _BOOLEANS:
        return _BOOLEANS[plain]
    if first in "~nN" and plain in _NULLS:
        return None
    if first in _NUMERIC_START and plain.lstrip("+-").isdigit():
        digits = plain.lstrip("+-")
        if len(plain) - len(digits) > 1 or (digits[0] == "0" and digits != "0"):
            raise _Outside  # octal, or two signs (PyYAML's to read)
        return int(plain)
    if first in _NUMERIC_START and _NUMERIC_CHARS.issuperset(plain):
        if not _numeric:
            _numeric.extend(re.compile(p, re.X) for p in _NUMERIC_PATTERNS)
        if any(pattern.match(plain) for pattern in _numeric):
            raise _Outside  # a float, a timestamp, an integer not in decimal digits
    if plain in ("<<", "="):
        raise _Outside  # merge and value keys
    return plain


class _Reader:
    """One pass over the content lines (neither blank nor a comment) of one text."""

    def __init__(self, text: str, file: str) -> None:
        self.doc = Document(file)
        lines = text.split("\n")
        #: (line index, indent, line) of each content line.
        self.rows: list[tuple[int, int, str]] = []
        for number, line in enumerate(lines):
            stripped = line.lstrip(" ")
            if not stripped or stripped[0] == "#":
                continue
            if line.startswith(("---", "...", "%")):
                raise _Outside  # documents and directives
            self.rows.append((number, len(line) - len(stripped), line))
        #: Where the stream ends: PyYAML's last block-end tokens are here.
        self.end = (len(lines), len(lines[-1]) + 1)

    def document(self) -> Document:
        if not self.rows:
            raise _Outside  # the empty manifest is PyYAML's to report
        indent = self.rows[0][1]
        self.doc.data, after = self.node(0, indent, ())
        if after != len(self.rows):
            raise _Outside  # what follows the root is an error
        return self.doc

    # -- where things are --

    def start_of(self, row: int) -> tuple[int, int]:
        """The position (1-based) of the first token of content row ``row``, or the
        stream's end past the last one: where a block collection before it ends."""
        if row >= len(self.rows):
            return self.end
        number, indent, _ = self.rows[row]
        return (number + 1, indent + 1)

    def place(self, path: ManifestPath, number: int, start: int, end: int) -> None:
        self.doc.marks[path] = (number + 1, start + 1)
        self.doc.ends[path] = (number + 1, end + 1)

    # -- block nodes --

    def node(self, row: int, column: int, path: ManifestPath) -> tuple[object, int]:
        """The block node at ``column`` of content row ``row`` (a mapping or a sequence);
        returns its value and the first row after it."""
        line = self.rows[row][2]
        if _entry(line, column):
            return self.sequence(row, column, path, indentless=False)
        if _key_end(line, column) is not None:
            return self.mapping(row, column, path)
        raise _Outside  # a scalar on its own line, a multi-line scalar, an error

    def mapping(self, row: int, column: int, path: ManifestPath) -> tuple[dict[str, object], int]:
        number = self.rows[row][0]
        self.doc.marks[path] = (number + 1, column + 1)
        result: dict[str, object] = {}
        first = True
        while row < len(self.rows):
            number, indent, line = self.rows[row]
            if not first:
                if indent < column:
                    break
                if indent > column or _entry(line, column):
                    raise _Outside  # a sequence entry where a key belongs: an error
            first = False
            key, colon = self.key(line, number, column)
            entry = (*path, key)
            if key in result:
                raise _Outside  # a duplicate key: an error, PyYAML's to report
            self.doc.key_marks[entry] = (number + 1, column + 1)
            start = _value_at(line, colon + 1)
            below = self.rows[row + 1] if row + 1 < len(self.rows) else None
            if (
                start is None
                and below is not None
                and below[1] == column
                and _entry(below[2], column)
            ):
                result[key], row = self.sequence(row + 1, column, entry, indentless=True)
                continue
            result[key], row = self.value(row, start, column, colon + 1, entry)
        self.doc.ends[path] = self.start_of(row)
        return result, row

    def sequence(
        self, row: int, column: int, path: ManifestPath, *, indentless: bool
    ) -> tuple[list[object], int]:
        number = self.rows[row][0]
        self.doc.marks[path] = (number + 1, column + 1)
        items: list[object] = []
        while row < len(self.rows):
            number, indent, line = self.rows[row]
            if indent < column or (indentless and not _entry(line, column)):
                break
            if indent > column or not _entry(line, column):
                raise _Outside
            item = (*path, len(items))
            value: object
            start = _value_at(line, column + 1)
            if start is not None and _entry(line, start):
                raise _Outside  # a sequence in a sequence on one line
            if start is not None and _key_end(line, start) is not None:
                value, row = self.mapping(row, start, item)  # "- key: value"
            else:
                value, row = self.value(row, start, column, column + 1, item)
            items.append(value)
        self.doc.ends[path] = self.start_of(row)
        return items, row

    def value(
        self, row: int, start: int | None, column: int, after: int, path: ManifestPath
    ) -> tuple[object, int]:
        """The value of the key or entry at ``column`` of content row ``row``, whose
        indicator ends at ``after``: on the line from ``start``, else the block below it,
        else empty (null, where the indicator ends); returns it and the row after it."""
        number, _, line = self.rows[row]
        row += 1
        below = self.rows[row][1] if row < len(self.rows) else -1
        if start is not None:
            if below > column:
                raise _Outside  # a continuation line, or an error
            return self.inline(line, number, start, path), row
        if below > column:
            return self.node(row, below, path)
        self.place(path, number, after, after)
        self.doc.sources[path] = ""
        return None, row

    def key(self, line: str, number: int, column: int) -> tuple[str, int]:
        """A mapping key at ``column`` and the column of the ``:`` after it."""
        if line[column] in "\"'":
            key, end = _quoted(line, column)
            if end >= len(line) or line[end] != ":" or not _space_or_end(line, end + 1):
                raise _Outside
            return key, end
        colon = _key_end(line, column)
        if colon is None:
            raise _Outside
        key = line[column:colon]
        if key != key.rstrip(" ") or " #" in key or not _plain_start(line, column, flow=False):
            raise _Outside
        if len(key) > 1000 or not isinstance(_resolve(key), str):
            raise _Outside  # not a simple key, or not a string: PyYAML's to report
        return key, colon

    def inline(self, line: str, number: int, start: int, path: ManifestPath) -> object:
        """The rest of the line from ``start`` as one node: a scalar or a flow collection,
        then nothing but spaces and a comment."""
        char = line[start]
        value: object
        if char in "[{":
            value, end = self.flow(line, number, start, path)
        elif char in "\"'":
            value, end = _quoted(line, start)
            self.place(path, number, start, end)
            self.doc.sources[path] = value
        else:
            if not _plain_start(line, start, flow=False):
                raise _Outside
            end = start
            while end < len(line):
                if line[end] == ":" and _space_or_end(line, end + 1):
                    raise _Outside  # a mapping where a value belongs
                if line[end] == "#" and line[end - 1] == " ":
                    break
                end += 1
            text = line[start:end].rstrip(" ")
            end = start + len(text)
            value = _resolve(text)
            self.place(path, number, start, end)
            self.doc.sources[path] = text
        _rest_is_comment(line, end)
        return value

    # -- flow collections on one line --

    def flow(self, line: str, number: int, start: int, path: ManifestPath) -> tuple[object, int]:
        closing = "]" if line[start] == "[" else "}"
        result: list[object] | dict[str, object] = [] if closing == "]" else {}
        at = _skip_spaces(line, start + 1)
        if at < len(line) and line[at] == closing:
            self.place(path, number, start, at + 1)
            return result, at + 1
        while True:
            if at >= len(line):
                raise _Outside  # it goes on to the next line
            if isinstance(result, list):
                item = (*path, len(result))
                value, at = self.flow_scalar(line, number, at, item)
                result.append(value)
            else:
                key_at = at
                key, at = self.flow_scalar(line, number, at, (*path, ""), key=True)
                if at >= len(line) or line[at] != ":" or not _space_or_end(line, at + 1):
                    raise _Outside  # a key without a value
                if not isinstance(key, str) or key in result:
                    raise _Outside  # not a string, or a duplicate
                entry = (*path, key)
                self.doc.key_marks[entry] = (number + 1, key_at + 1)
                at = _skip_spaces(line, at + 1)
                if at >= len(line) or line[at] in ",}":
                    raise _Outside  # an empty value
                result[key], at = self.flow_scalar(line, number, at, entry)
            at = _skip_spaces(line, at)
            if at < len(line) and line[at] == closing:
                self.place(path, number, start, at + 1)
                return result, at + 1
            if at >= len(line) or line[at] != ",":
                raise _Outside
            at = _skip_spaces(line, at + 1)
            if at < len(line) and line[at] in ",]}":
                raise _Outside  # an empty entry or a trailing comma

    def flow_scalar(
        self, line: str, number: int, start: int, path: ManifestPath, *, key: bool = False
    ) -> tuple[object, int]:
        """A scalar inside a flow collection: its value and the column after it."""
        if start >= len(line):
            raise _Outside
        if line[start] in "\"'":
            value: object
            value, end = _quoted(line, start)
        else:
            if not _plain_start(line, start, flow=True):
                raise _Outside
            end = start
            while end < len(line) and line[end] not in _FLOW_STOPS:
                if line[end] == "#" and line[end - 1] == " ":
                    raise _Outside  # a comment inside the collection
                end += 1
            if end < len(line) and line[end] in "?[{":
                raise _Outside
            text = line[start:end].rstrip(" ")
            end = start + len(text)
            value = _resolve(text)
            if not key:
                self.doc.sources[path] = text
        if not key:
            self.place(path, number, start, end)
            if line[start] in "\"'":
                self.doc.sources[path] = value  # type: ignore[assignment]
        return value, end


def _skip_spaces(line: str, at: int) -> int:
    while at < len(line) and line[at] == " ":
        at += 1
    return at


def _value_at(line: str, at: int) -> int | None:
    """Where a value starts on ``line`` after an indicator ending at ``at``; None when
    only spaces, and a comment after at least one, follow."""
    start = _skip_spaces(line, at)
    if start >= len(line) or (line[start] == "#" and start > at):
        return None
    return start


def _space_or_end(line: str, at: int) -> bool:
    return at >= len(line) or line[at] == " "


def _entry(line: str, column: int) -> bool:
    """A block sequence entry (``-`` then a space or the line's end) at ``column``."""
    return line.startswith("-", column) and _space_or_end(line, column + 1)


def _plain_start(line: str, at: int, *, flow: bool) -> bool:
    """Whether a plain scalar may start at ``at`` (PyYAML's ``check_plain``, without the
    ``?`` and ``:`` starts this module leaves to PyYAML)."""
    char = line[at]
    if char not in _INDICATORS:
        return True
    return char == "-" and not _space_or_end(line, at + 1)


def _key_end(line: str, column: int) -> int | None:
    """The column of the ``:`` that ends a plain or quoted key starting at ``column``."""
    if line[column] in "\"'":
        try:
            _, end = _quoted(line, column)
        except _Outside:
            return None
        return end if line.startswith(":", end) and _space_or_end(line, end + 1) else None
    at = column
    while True:
        at = line.find(":", at)
        if at < 0:
            return None
        if _space_or_end(line, at + 1):
            return at
        at += 1


def _quoted(line: str, start: int) -> tuple[str, int]:
    """A single-line quoted scalar at ``start``: its value and the column after it.
    Double-quoted ones with escapes are left to PyYAML."""
    quote = line[start]
    if quote == '"':
        end = line.find('"', start + 1)
        if end < 0 or "\\" in line[start:end]:
            raise _Outside
        return line[start + 1 : end], end + 1
    parts = []
    at = start + 1
    while True:
        end = line.find("'", at)
        if end < 0:
            raise _Outside
        parts.append(line[at:end])
        if line.startswith("'", end + 1):
            parts.append("'")
            at = end + 2
            continue
        return "".join(parts), end + 1


def _rest_is_comment(line: str, at: int) -> None:
    """Only spaces, and a comment after at least one, may follow a value on its line."""
    if _value_at(line, at) is not None:
        raise _Outside
