"""Read a manifest file: bounded, safe YAML -> schema -> semantic checks -> frozen model.

Every problem of one run is collected and raised together as a ManifestError,
in document order.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from reconciler.errors import ManifestError, Problem
from reconciler.manifest.model import Manifest
from reconciler.manifest.schema_check import SCHEMA_NAME, check_schema
from reconciler.manifest.semantics import build_manifest
from reconciler.manifest.yaml_nodes import read_document

__all__ = [
    "MAX_MANIFEST_BYTES",
    "ValidationMemo",
    "load_manifest",
    "load_manifest_text",
    "schema_key",
]

#: A manifest larger than this is refused before it is parsed.
MAX_MANIFEST_BYTES = 1_048_576


@dataclass
class ValidationMemo:
    """Results of pure checks, remembered between runs by the caller (the state dir).

    ``schema_valid`` holds :func:`schema_key` values of manifest bytes that passed
    the JSON Schema: those skip jsonschema (its import alone costs ~60 ms on every
    app start). ``conda_specs`` maps a conda string to its parsed (name, version,
    plain), so py-rattler need not be imported to re-parse it. Only successes are
    remembered; every other check runs each time.
    """

    schema_valid: set[str] = field(default_factory=set)
    conda_specs: dict[str, tuple[str, str | None, bool]] = field(default_factory=dict)
    changed: bool = False


def load_manifest(
    path: Union[Path, str],
    *,
    check_prefixes: bool = True,
    memo: ValidationMemo | None = None,
) -> Manifest:
    """Load and validate the manifest at ``path``.

    With ``check_prefixes``, existing prefixes are looked at (only whether they
    are directories with ``conda-meta/``); nothing else on the machine is read.
    ``memo`` (updated in place on success) lets a repeated load skip pure checks
    that already passed. Raises ManifestError with every problem found, each
    located as ``file:line:col: path: message`` where ``file`` is ``path`` as given.
    """
    file = os.fspath(path)
    raw = _read(file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _whole_file(file, f"the manifest is not UTF-8 text (byte {exc.start})") from None
    return _load(text, file, hashlib.sha256(raw).hexdigest(), check_prefixes, memo)


def load_manifest_text(
    text: str, path: Union[Path, str], *, check_prefixes: bool = True
) -> Manifest:
    """Validate manifest ``text`` as if it were the file at ``path`` (which is not read).

    The same checks as :func:`load_manifest`, size bound included; ``sha256`` is
    that of the UTF-8 bytes of ``text``, what writing it would put in the file.
    This is how an edit is planned and validated before it replaces the file.
    """
    file = os.fspath(path)
    raw = text.encode("utf-8")
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _whole_file(file, f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes (1 MiB)")
    return _load(text, file, hashlib.sha256(raw).hexdigest(), check_prefixes, None)


def _load(
    text: str, file: str, sha256: str, check_prefixes: bool, memo: ValidationMemo | None
) -> Manifest:
    document = read_document(text, file)
    key = schema_key(sha256) if memo is not None else ""
    known_valid = memo is not None and not document.problems and key in memo.schema_valid
    if memo is not None:
        document.conda_memo.update(memo.conda_specs)
    if not known_valid and (not document.problems or document.data is not None):
        check_schema(document)
    manifest = build_manifest(
        document,
        path=Path(os.path.abspath(file)),
        sha256=sha256,
        check_prefixes=check_prefixes,
    )
    if document.problems:
        unique = list(dict.fromkeys(document.problems))
        raise ManifestError(sorted(unique, key=lambda p: (p.line, p.column)))
    if memo is not None and (
        key not in memo.schema_valid or document.conda_memo.keys() - memo.conda_specs.keys()
    ):
        memo.schema_valid.add(key)
        memo.conda_specs.update(document.conda_memo)
        memo.changed = True
    return manifest


def schema_key(sha256: str) -> str:
    """Identifies "these manifest bytes passed this schema" (the schema file's own hash too)."""
    from reconciler.resources import schema_path

    schema = hashlib.sha256(schema_path(SCHEMA_NAME).read_bytes()).hexdigest()[:16]
    return f"{sha256}:{schema}"


def _read(file: str) -> bytes:
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise _unreadable(file, exc) from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _whole_file(file, f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes (1 MiB)")
    return raw


def _whole_file(file: str, message: str) -> ManifestError:
    return ManifestError([Problem(file, 1, 1, "", message)])


def _unreadable(file: str, exc: OSError) -> ManifestError:
    """``team.yaml: no such file``: the file, not its content, is the problem."""
    if isinstance(exc, FileNotFoundError):
        problem = "no such file"
        hint = f"check the path; a relative path is read from the current directory ({os.getcwd()})"
    elif isinstance(exc, IsADirectoryError):
        problem, hint = "is a directory", "give the path of the manifest file inside it"
    else:
        problem = f"cannot read it: {exc.strerror or exc}"
        hint = "check the file's permissions"
    error = _whole_file(file, problem)
    error.message = f"{file}: {problem}"
    error.hint = hint
    error.args = (error.message,)
    return error
