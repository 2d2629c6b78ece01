"""Manifest text out: edit an environment's ``pip``/``conda`` list, validate, replace atomically.

Edits go through ruamel.yaml's round-trip mode, so comments, key order, quoting,
flow or block style and blank lines stay as they were; the text is never edited
as strings. Two checks keep that promise instead of trusting the library: the
unedited document must dump back to the exact original text under the layout
chosen for it (indents, sequence offset), and the edited text may differ from
the original only inside the edited environment's block. A file that fails
either is not rewritten; the error says to edit it by hand.

The result is validated with the manifest loader (PyYAML, the safe loader every
other command uses) before it replaces the file, and the file is replaced only
if it still holds the bytes that were read (no edit made meanwhile is lost).
ruamel.yaml is imported here only: ``add``, ``remove`` and ``adopt`` pay for it.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from reconciler.errors import ReconcilerError
from reconciler.manifest.loader import MAX_MANIFEST_BYTES, load_manifest_text
from reconciler.manifest.model import Manifest
from reconciler.manifest.yaml_nodes import ManifestPath, read_document
from reconciler.values import field, value

__all__ = [
    "ListEdit",
    "ManifestSource",
    "Side",
    "edit_manifest",
    "entry_name",
    "read_source",
    "unified_diff",
    "write_manifest",
]

Side = Literal["pip", "conda"]

#: Where a new list goes among an environment's keys: after the last of these present.
_AFTER: dict[str, tuple[str, ...]] = {
    "conda": ("prefix", "create", "channels"),
    "pip": ("prefix", "create", "channels", "conda"),
}


@value
class ManifestSource:
    """The manifest file as read: its bytes (to detect a concurrent edit) and text."""

    path: Path
    raw: bytes
    text: str

    @property
    def bom(self) -> bool:
        """The file starts with a UTF-8 byte order mark (kept when writing)."""
        return self.raw.startswith(b"\xef\xbb\xbf")


@value
class ListEdit:
    """Changes to ``environments.<env>.<side>``.

    ``put`` maps a package name (canonical for pip) to the entry to write: the
    first entry for that package is replaced, later ones dropped, and a package
    not listed is appended. ``drop`` names packages whose entries are removed.
    """

    env: str
    side: Side
    put: Mapping[str, str] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()


def read_source(path: Path) -> ManifestSource:
    """Read the manifest at ``path`` (bounded like the loader)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ReconcilerError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ReconcilerError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes (1 MiB)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReconcilerError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    return ManifestSource(path, raw, text)


def entry_name(side: Side, text: str) -> str:
    """The package an entry is for: the canonical pip name, or the conda name."""
    from reconciler.manifest.specs import parse_conda, parse_pip

    if side == "pip":
        from reconciler.names import canonical_name

        return canonical_name(parse_pip(text).name)
    return parse_conda(text)[0]


def edit_manifest(source: ManifestSource, edits: Sequence[ListEdit]) -> str:
    """The manifest text with ``edits`` made; ReconcilerError when the rest cannot be kept."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    yaml = _layout(source)
    data = yaml.load(source.text)
    environments = data["environments"]
    for edit in edits:
        body = environments[edit.env]
        if not isinstance(body, CommentedMap):
            raise ReconcilerError(f"{source.path}: environments.{edit.env} is not a mapping")
        items = body.get(edit.side)
        if items is None:
            if not edit.put:
                continue
            items = CommentedSeq()
            if _prefers_flow(environments):
                items.fa.set_flow_style()
            keys = list(body)
            after = [keys.index(k) for k in _AFTER[edit.side] if k in body]
            body.insert(max(after) + 1 if after else len(keys), edit.side, items)
        _edit_list(items, edit)
    out = io.StringIO()
    yaml.dump(data, out)
    text = _line_endings(source.text, out.getvalue())
    _check_confined(source, text, {e.env for e in edits})
    return text


def write_manifest(source: ManifestSource, text: str) -> Manifest:
    """Validate ``text`` and atomically replace the file with it; returns the new manifest.

    Refuses (nothing written) when ``text`` is not a valid manifest or when the
    file changed since ``source`` was read.
    """
    manifest = load_manifest_text(text, source.path)
    data = (b"\xef\xbb\xbf" if source.bom else b"") + text.encode("utf-8")
    path = source.path
    try:
        current = path.read_bytes()
    except OSError as exc:
        raise ReconcilerError(f"cannot read {path}: {exc.strerror or exc}") from None
    if current != source.raw:
        raise ReconcilerError(
            f"{path} changed while reconciler was working on it; it was not written",
            hint="run the command again",
        )
    target = path.resolve()  # a symlinked manifest: replace the file, keep the link
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, target.stat().st_mode & 0o7777)
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ReconcilerError(
            f"cannot write {path}: {exc.strerror or exc}; the manifest is unchanged"
        ) from None
    with contextlib.suppress(OSError):
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return manifest


def unified_diff(source: ManifestSource, text: str) -> str:
    """``text`` against the file as a unified diff (empty when equal)."""
    name = str(source.path)
    lines = difflib.unified_diff(
        source.text.splitlines(keepends=True), text.splitlines(keepends=True), name, name
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# -- internals ---------------------------------------------------------------------------


def _edit_list(items: Any, edit: ListEdit) -> None:
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    done: set[str] = set()
    style: type[str] | None = type(items[-1]) if len(items) else None
    if items.fa.flow_style() is None:  # written as [] (ruamel keeps no style for it)
        items.fa.set_flow_style()
    for index in reversed(range(len(items))):
        name = entry_name(edit.side, str(items[index]))
        if name in edit.drop:
            del items[index]
        elif name in edit.put:
            first = not any(entry_name(edit.side, str(x)) == name for x in items[:index])
            if first:
                items[index] = _styled(edit.put[name], type(items[index]))
                done.add(name)
            else:
                del items[index]
    for name, text in edit.put.items():
        if name not in done:
            # Like the entry before it (plain, '' or ""); a new list's first entry in "".
            items.append(_styled(text, style or DoubleQuotedScalarString))


def _styled(text: str, kind: type[str]) -> str:
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

    value: str = text
    if kind is SingleQuotedScalarString and "'" not in text:
        value = SingleQuotedScalarString(text)
    elif kind in (DoubleQuotedScalarString, SingleQuotedScalarString):
        value = DoubleQuotedScalarString(text)
    return value


def _prefers_flow(environments: Any) -> bool:
    """A new list is written in the style of the file's other package lists (flow if none)."""
    for body in environments.values():
        for side in ("pip", "conda"):
            items = getattr(body, "get", lambda _key: None)(side)
            if items is not None and hasattr(items, "fa"):
                return bool(items.fa.flow_style())
    return True


def _candidates(guess: tuple[int, int]) -> Iterator[tuple[int, int, int]]:
    """(mapping indent, sequence indent, dash offset) layouts, the guessed one first."""
    seen: set[tuple[int, int, int]] = set()
    mapping, offset = guess
    options = [(mapping, offset + 2, offset)]
    for m in (2, 4, 3):
        for o in (0, 2, 1, 3, 4):
            options += [(m, o + 2, o), (m, o + 4, o)]
    for option in options:
        if option not in seen:
            seen.add(option)
            yield option


def _layout(source: ManifestSource) -> Any:
    """A round-trip YAML instance whose dump of the unedited document is the file itself."""
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    try:
        _, guessed_sequence, guessed_offset = load_yaml_guess_indent(source.text)
    except Exception:  # ruamel raises its own error classes; the file validated already
        guessed_sequence, guessed_offset = 2, 0
    guess = (2, guessed_offset or 0) if guessed_sequence else (2, 0)
    expected = source.text.replace("\r\n", "\n")
    for mapping, sequence, offset in _candidates(guess):
        yaml = YAML(typ="rt")
        yaml.preserve_quotes = True
        yaml.width = 4096  # never fold a long line
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        if expected.startswith("---"):
            yaml.explicit_start = True
        out = io.StringIO()
        yaml.dump(yaml.load(source.text), out)
        if out.getvalue() == expected:
            return yaml
    raise ReconcilerError(
        f"{source.path}: reconciler cannot rewrite this file without changing its layout "
        "(indentation or style it does not reproduce); it was not written",
        hint="make the change by hand, then run `reconciler validate`",
    )


def _line_endings(original: str, text: str) -> str:
    return text.replace("\n", "\r\n") if "\r\n" in original else text


def _check_confined(source: ManifestSource, text: str, envs: set[str]) -> None:
    """Every changed line of the original lies inside an edited environment's block."""
    document = read_document(source.text, str(source.path))
    spans: list[tuple[int, int]] = []
    for env in envs:
        path: ManifestPath = ("environments", env)
        start = document.key_marks.get(path, document.marks.get(path, (1, 1)))[0]
        end_line, end_column = document.ends.get(path, (start, 1))
        # A block mapping ends at the start of the next token's line (column 1).
        spans.append((start - 1, end_line - 1 if end_column == 1 else end_line))
    old, new = source.text.splitlines(), text.splitlines()
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag == "equal":
            continue
        if not any(low <= i1 and i2 <= high for low, high in spans):
            raise ReconcilerError(
                f"{source.path}: the edit would also change line {i1 + 1}, outside the "
                "environment it is for; the file was not written",
                hint="make the change by hand, then run `reconciler validate`",
            )
