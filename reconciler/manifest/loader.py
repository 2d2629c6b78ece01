"""Read a manifest file: bounded, safe YAML -> schema -> semantic checks -> frozen model.

Every problem of one run is collected and raised together as a ManifestError,
in document order.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Union

from reconciler.errors import ManifestError, Problem
from reconciler.manifest.model import Manifest
from reconciler.manifest.schema_check import check_schema
from reconciler.manifest.semantics import build_manifest
from reconciler.manifest.yaml_nodes import read_document

__all__ = ["MAX_MANIFEST_BYTES", "load_manifest"]

#: A manifest larger than this is refused before it is parsed.
MAX_MANIFEST_BYTES = 1_048_576


def load_manifest(path: Union[Path, str], *, check_prefixes: bool = True) -> Manifest:
    """Load and validate the manifest at ``path``.

    With ``check_prefixes``, existing prefixes are looked at (only whether they
    are directories with ``conda-meta/``); nothing else on the machine is read.
    Raises ManifestError with every problem found, each located as
    ``file:line:col: path: message`` where ``file`` is ``path`` as given.
    """
    file = os.fspath(path)
    raw = _read(file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _whole_file(file, f"the manifest is not UTF-8 text (byte {exc.start})") from None
    document = read_document(text, file)
    if not document.problems or document.data is not None:
        check_schema(document)
    manifest = build_manifest(
        document,
        path=Path(os.path.abspath(file)),
        sha256=hashlib.sha256(raw).hexdigest(),
        check_prefixes=check_prefixes,
    )
    if document.problems:
        unique = list(dict.fromkeys(document.problems))
        raise ManifestError(sorted(unique, key=lambda p: (p.line, p.column)))
    return manifest


def _read(file: str) -> bytes:
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise _whole_file(file, f"cannot read the manifest: {exc.strerror or exc}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _whole_file(file, f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes (1 MiB)")
    return raw


def _whole_file(file: str, message: str) -> ManifestError:
    return ManifestError([Problem(file, 1, 1, "", message)])
