"""Read a manifest file: bounded, safe YAML -> schema -> semantic checks -> frozen model.

Every problem of one run is collected and raised together as a ManifestError,
in document order. With a :class:`ValidationMemo`, a manifest whose bytes,
location and checks are unchanged since it last loaded is rebuilt from the model
remembered then (no YAML parser, schema or requirement parsing), as long as the
prefix checks that read the machine still pass (:mod:`reconciler.manifest.world`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from reconciler import __version__, digest
from reconciler.errors import ManifestError
from reconciler.manifest import model
from reconciler.manifest.model import Manifest
from reconciler.manifest.world import prefixes_allow
from reconciler.values import field, fields, is_value, value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Union

__all__ = [
    "MAX_MANIFEST_BYTES",
    "ValidationMemo",
    "load_manifest",
    "load_manifest_text",
    "schema_key",
]

#: A manifest larger than this is refused before it is parsed.
MAX_MANIFEST_BYTES = 1_048_576
#: The manifest schema (:mod:`reconciler.manifest.schema_check` checks against it).
SCHEMA_NAME = "manifest.v1.schema.json"
#: A URL's userinfo (``https://user:secret@host``): such a model is not remembered.
_CREDENTIALS = re.compile(r"://[^/\s\"@]*@")
#: Models remembered (the most recent manifests).
KEPT_MODELS = 8
#: The modules whose code decides what a manifest loads as (paths in the package): a
#: remembered model is reused only while they are unchanged (a development checkout
#: keeps its version).
_CHECKS = (
    "manifest/loader", "manifest/merge", "manifest/model", "manifest/optional",
    "manifest/schema_check", "manifest/schema_fast", "manifest/semantics", "manifest/specs",
    "manifest/world", "manifest/yaml_compose", "manifest/yaml_fast", "manifest/yaml_nodes",
    "names", "pep508",
)  # fmt: skip


@value(frozen=False)
class ValidationMemo:
    """Results of pure checks, remembered between runs by the caller (the state dir).

    ``schema_valid`` holds :func:`schema_key` values of manifest bytes that passed
    the JSON Schema: those skip jsonschema (its import alone costs ~60 ms on every
    app start). ``conda_specs`` maps a conda string to its parsed (name, version,
    plain), so py-rattler need not be imported to re-parse it. ``models`` maps a
    :func:`_model_key` to the JSON form of the model that loaded without a problem.
    Only successes are remembered; every check reading the machine runs each time.
    """

    schema_valid: set[str] = field(default_factory=set)
    conda_specs: dict[str, tuple[str, str | None, bool]] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
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
    sha256 = digest.sha256(raw).hexdigest()
    model_key = _model_key(sha256, file, check_prefixes) if memo is not None else ""
    if memo is not None and model_key in memo.models:
        remembered = _from_json(memo.models[model_key])
        if isinstance(remembered, Manifest) and (not check_prefixes or prefixes_allow(remembered)):
            return remembered
    manifest = _decode_and_load(file, raw, sha256, check_prefixes, memo)
    if memo is not None:
        try:
            encoded = _to_json(manifest)
        except TypeError:  # a model value this memo cannot write: load it in full each time
            return manifest
        if _CREDENTIALS.search(json.dumps(encoded)):
            return manifest  # a URL with user:password@ is never written to the state dir
        if memo.models.get(model_key) != encoded:
            memo.models.pop(model_key, None)
            memo.models[model_key] = encoded
            memo.changed = True
    return manifest


def _decode_and_load(
    file: str, raw: bytes, sha256: str, check_prefixes: bool, memo: ValidationMemo | None
) -> Manifest:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _whole_file(file, f"the manifest is not UTF-8 text (byte {exc.start})") from None
    return _load(text, file, sha256, check_prefixes, memo)


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
    return _load(text, file, digest.sha256(raw).hexdigest(), check_prefixes, None)


def _load(
    text: str, file: str, sha256: str, check_prefixes: bool, memo: ValidationMemo | None
) -> Manifest:
    # The YAML parser, jsonschema and packaging load only here.
    from reconciler.manifest.schema_check import check_schema
    from reconciler.manifest.semantics import build_manifest
    from reconciler.manifest.yaml_nodes import read_document

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
    return f"{sha256}:{schema_sha256()[:16]}"


def schema_sha256() -> str:
    """The sha256 of the manifest schema file as it is now (read each time: a development
    checkout may edit it)."""
    from reconciler.resources import schema_path

    return digest.sha256(schema_path(SCHEMA_NAME).read_bytes()).hexdigest()


def _model_key(sha256: str, file: str, check_prefixes: bool) -> str:
    """Everything besides the prefix checks that a loaded model depends on: the bytes and
    where they are, ``~`` (``HOME``), the schema and the code of the checks."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package
    code = []
    for name in _CHECKS:
        try:
            st = os.stat(os.path.join(here, f"{name}.py"))
        except OSError:
            continue
        code.append(f"{st.st_size}:{st.st_mtime_ns}")
    parts = (
        schema_key(sha256), os.path.abspath(file), os.path.expanduser("~"), __version__,
        str(check_prefixes), *code,
    )  # fmt: skip
    return digest.sha256("\0".join(parts).encode()).hexdigest()


def _to_json(value: object) -> Any:
    """The model as JSON: ``{"@": class, field: ...}``, tuples as lists, paths tagged."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, Path):
        return {"@": "Path", "path": str(value)}
    if is_value(value) and getattr(model, type(value).__name__, None) is type(value):
        out = {"@": type(value).__name__}
        for name in fields(value):
            out[name] = _to_json(getattr(value, name))
        return out
    raise TypeError(f"cannot remember {type(value).__name__} values")


def _from_json(data: Any) -> Any:
    """Inverse of :func:`_to_json`; None for anything it did not write."""
    try:
        return _decode(data)
    except (TypeError, KeyError, ValueError, AttributeError):
        return None


def _decode(data: Any) -> Any:
    if isinstance(data, list):
        return tuple(_decode(v) for v in data)
    if not isinstance(data, dict):
        return data
    kind = data["@"]
    if kind == "Path":
        return Path(data["path"])
    cls = getattr(model, kind)
    if kind not in model.__all__ or not isinstance(cls, type) or not is_value(cls):
        raise ValueError(kind)
    names = set(fields(cls))
    if set(data) - {"@"} != names:
        raise ValueError(kind)  # written by a model with other fields
    return cls(**{k: _decode(v) for k, v in data.items() if k != "@"})


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
    from reconciler.manifest.problem import Problem

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
