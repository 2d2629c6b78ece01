"""Manifest YAML composed by PyYAML into a :class:`Document`: every text, every error.

PyYAML composes the text into nodes (with marks); this module turns the nodes
into dicts, lists and scalars itself, so no YAML constructor ever runs. It
refuses what a manifest never needs and what makes YAML dangerous: anchors and
aliases (exponential expansion), tags beyond the core schema (object
construction), duplicate and non-string keys. ``yaml_nodes.read_document`` comes here
for every text that :mod:`reconciler.manifest.yaml_fast` does not read.
"""

from __future__ import annotations

import yaml

from reconciler.errors import ManifestError, Problem
from reconciler.manifest.yaml_nodes import Document, ManifestPath, format_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["compose_document"]

_CORE = "tag:yaml.org,2002:"
_NOTE = "a manifest holds only strings, numbers, booleans, null, lists and mappings"


def compose_document(text: str, file: str) -> Document:
    """Compose ``text`` as one YAML document; raises ManifestError when it is not usable YAML.

    Problems that leave the rest readable (tags, keys) are recorded in the
    returned document instead, so that one run reports them all.
    """
    document = Document(file)
    try:
        root = yaml.compose(text, Loader=_Loader)
        if root is not None:
            document.data = _Builder(document).value(root, ())
    except _Refused as refused:
        raise _fatal(file, refused.mark, refused.message) from None
    except yaml.MarkedYAMLError as exc:
        if exc.context == "expected a single document in the stream":
            message = "expected a single YAML document, found a second one (---)"
        else:
            message = f"invalid YAML: {exc.problem}"
            if exc.context:
                message += f" ({exc.context}"
                if exc.context_mark is not None and exc.context_mark is not exc.problem_mark:
                    message += f" at line {exc.context_mark.line + 1}"
                message += ")"
        raise _fatal(file, exc.problem_mark, message) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        problem = Problem(
            file,
            line,
            column,
            "",
            f"invalid YAML: character U+{code:04X} is not allowed in a YAML file",
        )
        raise ManifestError([problem]) from None
    except yaml.YAMLError as exc:
        raise ManifestError([Problem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise ManifestError([Problem(file, 1, 1, "", "invalid YAML: nested too deeply")]) from None
    if root is None:
        document.report((), "the manifest is empty; it needs at least 'version: 1'")
    return document


class _Refused(Exception):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases while composing."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                event.start_mark,
                f"YAML alias '*{event.anchor}' is not allowed: "
                "anchors and aliases are disabled in manifests",
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _Refused(
                event.start_mark,
                f"YAML anchor '&{anchor}' is not allowed: "
                "anchors and aliases are disabled in manifests",
            )
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def _fatal(file: str, mark: Any, message: str) -> ManifestError:
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return ManifestError([Problem(file, line, column, "", message)])


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


class _Builder:
    """Builds values from nodes, filling the document's marks."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.constructor = yaml.constructor.SafeConstructor()

    def value(self, node: yaml.Node, path: ManifestPath) -> object:
        self.document.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        self.document.ends[path] = (node.end_mark.line + 1, node.end_mark.column + 1)
        if isinstance(node, yaml.MappingNode) and node.tag == _CORE + "map":
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == _CORE + "seq":
            return [self.value(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode):
            self.document.sources[path] = _source_text(node)
            return self.scalar(node, path)
        self.document.report(path, f"tag {_short_tag(node.tag)!r} is not allowed; {_NOTE}")
        return None

    def scalar(self, node: yaml.ScalarNode, path: ManifestPath) -> object:
        kind = node.tag[len(_CORE) :] if node.tag.startswith(_CORE) else None
        # Timestamps, merge and value keys are only meaningful to YAML's own
        # constructors; as values they are kept as the text the user wrote.
        if kind in ("str", "timestamp", "merge", "value"):
            return node.value
        if kind == "null":
            return None
        if kind in ("bool", "int", "float"):
            try:
                return getattr(self.constructor, f"construct_yaml_{kind}")(node)
            except (ValueError, yaml.YAMLError):
                self.document.report(path, f"{node.value!r} is not a valid !!{kind}")
                return None
        self.document.report(path, f"tag {_short_tag(node.tag)!r} is not allowed; {_NOTE}")
        return None

    def mapping(self, node: yaml.MappingNode, path: ManifestPath) -> dict[str, object]:
        result: dict[str, object] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            key = self.key(key_node, path, key_mark)
            if key is None:
                continue
            entry = (*path, key)
            if key in result:
                self.document.key_marks.setdefault(entry, key_mark)
                self.document.problems.append(
                    Problem(
                        self.document.file,
                        *key_mark,
                        format_path(entry),
                        f"duplicate key {key!r} (first defined at line {first_line[key]})",
                    )
                )
                continue
            first_line[key] = key_mark[0]
            self.document.key_marks[entry] = key_mark
            result[key] = self.value(value_node, entry)
        return result

    def key(self, node: yaml.Node, path: ManifestPath, mark: tuple[int, int]) -> str | None:
        where = format_path(path)
        if isinstance(node, yaml.ScalarNode) and node.tag == _CORE + "str":
            return str(node.value)
        if isinstance(node, yaml.ScalarNode) and node.tag == _CORE + "merge":
            message = "merge keys ('<<') are not allowed"
        elif isinstance(node, yaml.ScalarNode) and node.tag.startswith(_CORE):
            kind = {
                "int": "a number",
                "float": "a number",
                "bool": "a boolean",
                "null": "null",
            }.get(node.tag[len(_CORE) :], _short_tag(node.tag))
            text = _source_text(node)
            message = f'key {text} is read as {kind}, not a string; quote it: "{text}"'
        else:
            message = "keys must be plain strings"
        self.document.problems.append(Problem(self.document.file, *mark, where, message))
        return None


def _source_text(node: yaml.ScalarNode) -> str:
    """The scalar as written in the file, without quotes (for hints like ``quote it``)."""
    start, end = node.start_mark, node.end_mark
    if start.buffer is not None and end is not None and start.line == end.line:
        text = start.buffer[start.pointer : end.pointer].strip()
        if text and text[0] not in "\"'|>":
            return text
    return str(node.value)
