"""Hostile manifests: every one is rejected by ``validate`` and ``plan`` before anything runs.

Each hostile string is put into every manifest field it could reach (pip and
conda lists, ``all:``, prefix, channels, pip index settings, kernel, create,
environment names, protect) and run through the real CLI entry
(``reconciler.cli.main``): ``validate`` and ``plan`` must both exit 1 with one
``FILE:LINE:COL`` error at the hostile value, no traceback, no process started
(:func:`tests.faults.guards.guard_processes`), no canary file, nothing written
to the state dir. Whole-file attacks (YAML tags, aliases, size, nesting,
encodings) and symlinked prefixes have their own tables; a Hypothesis property
inserts hostile fragments at random places of valid values.

Rules decided here (see the report and ``reconciler/manifest/semantics.py``):

* A prefix that is, or resolves through, a symbolic link is rejected with the
  real path in the message: an environment has one name, so its lock,
  baseline, owned set and the duplicate-prefix check cannot be sidestepped.
* ``display_name`` is free text: shell metacharacters, quotes and non-ASCII
  letters are stored verbatim in kernel.json (json.dump, never a shell);
  control, line-break and invisible format characters are rejected, as in
  every other string.
* ``file:///etc`` is a well-formed local channel or index: accepted, and it
  fails like any wrong location when the resolver looks there (no shell, no
  process before the resolver).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.manifest import MAX_MANIFEST_BYTES, load_manifest
from tests.faults.guards import (
    CANARY,
    REJECTED,
    ProcessAttempted,
    assert_cli_error,
    guard_processes,
    record_rejected,
    yaml_quote,
)
from tests.support.envs import make_venv, tree_hash
from tests.support.manifests import run_cli

C = str(CANARY)
#: A prefix that does not exist: nothing on the machine is read for it.
PREFIX = "/nonexistent-reconciler-faults/env"
ENV = f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n"


@dataclass(frozen=True)
class Field:
    """Where a hostile value goes: a manifest with ``@@`` for it, and its manifest path."""

    template: str
    path: str | None  # as the error prints it; None: a key (printed escaped)
    kind: str  # name | path | url | channel | free


FIELDS: dict[str, Field] = {
    "pip": Field(ENV + "    pip: [@@]\n", "environments.e.pip[0]", "name"),
    "conda": Field(ENV + "    conda: [@@]\n", "environments.e.conda[0]", "name"),
    "all.pip": Field("version: 1\nall:\n  pip: [@@]\n" + ENV[11:], "all.pip[0]", "name"),
    "all.conda": Field("version: 1\nall:\n  conda: [@@]\n" + ENV[11:], "all.conda[0]", "name"),
    "prefix": Field(
        "version: 1\nenvironments:\n  e:\n    prefix: @@\n", "environments.e.prefix", "path"
    ),
    "channels": Field(
        "version: 1\ndefaults:\n  channels: [@@]\n" + ENV[11:], "defaults.channels[0]", "channel"
    ),
    "env.channels": Field(ENV + "    channels: [@@]\n", "environments.e.channels[0]", "channel"),
    "index_url": Field(
        "version: 1\ndefaults:\n  pip:\n    index_url: @@\n" + ENV[11:],
        "defaults.pip.index_url",
        "url",
    ),
    "extra_index_urls": Field(
        "version: 1\ndefaults:\n  pip:\n    extra_index_urls: [@@]\n" + ENV[11:],
        "defaults.pip.extra_index_urls[0]",
        "url",
    ),
    "find_links": Field(
        "version: 1\ndefaults:\n  pip:\n    find_links: [@@]\n" + ENV[11:],
        "defaults.pip.find_links[0]",
        "url",
    ),
    "kernel.name": Field(
        ENV + "    kernel: {name: @@, display_name: Python 3}\n",
        "environments.e.kernel.name",
        "name",
    ),
    "kernel.display_name": Field(
        ENV + "    kernel: {name: k, display_name: @@}\n",
        "environments.e.kernel.display_name",
        "free",
    ),
    "create.venv": Field(ENV + "    create: {venv: @@}\n", "environments.e.create.venv", "path"),
    "create.python": Field(
        ENV + "    create: {python: @@}\n", "environments.e.create.python", "name"
    ),
    "environment name": Field(
        "version: 1\nenvironments:\n  @@:\n    prefix: /nonexistent-reconciler-faults/x\n",
        None,
        "name",
    ),
    "protect": Field("version: 1\nprotect: [@@]\n" + ENV[11:], "protect[0]", "name"),
}
#: Every field but free text.
STRICT = tuple(name for name, f in FIELDS.items() if f.kind != "free")
REQUIREMENTS = ("pip", "conda", "all.pip", "all.conda")
PATHS = ("prefix", "create.venv", "find_links")
URLS = ("index_url", "extra_index_urls", "find_links", "channels", "env.channels")

#: A valid value of each field, for hostile fragments to be added to.
BASES: dict[str, tuple[str, ...]] = {
    "pip": ("alpha",),
    "conda": ("alpha",),
    "all.pip": ("alpha",),
    "all.conda": ("alpha",),
    "prefix": ("/opt/env",),
    "channels": ("conda-forge", "https://example.invalid/channel"),
    "env.channels": ("conda-forge",),
    "index_url": ("https://example.invalid/simple",),
    "extra_index_urls": ("https://example.invalid/simple",),
    "find_links": ("/srv/wheels", "https://example.invalid/wheels/"),
    "kernel.name": ("dl",),
    "kernel.display_name": ("Python 3",),
    "create.venv": ("/usr/bin/python3",),
    "create.python": ("3.11",),
    "environment name": ("dl",),
    "protect": ("numpy",),
}


@dataclass(frozen=True)
class Case:
    """One hostile value in one field."""

    category: str
    field: str
    value: str

    def manifest(self) -> str:
        return FIELDS[self.field].template.replace("@@", yaml_quote(self.value))

    def position(self) -> tuple[int, int]:
        """Line and column where the value is written."""
        template = FIELDS[self.field].template
        offset = template.index("@@")
        line = template.count("\n", 0, offset) + 1
        return line, offset - (template.rfind("\n", 0, offset) + 1) + 1


# -- the hostile strings ------------------------------------------------------------------

#: Shell syntax that would create the canary if anything ran it through a shell.
SHELL = (
    f"$(touch {C})",
    f"`touch {C}`",
    f"; touch {C}",
    f"&&touch {C}",
    f" | touch {C}",
    f" & touch {C}",
    f"\ntouch {C}",
    f" > {C}",
    f"${{IFS}}touch${{IFS}}{C}",
    f"' ; touch {C} '",
    f"$'\\x74ouch' {C}",
)

#: Installer options: a requirement, path or URL must never be read as one.
OPTIONS = (
    "--index-url=http://evil.invalid/simple",
    "-i http://evil.invalid/simple",
    "-r /etc/passwd",
    "-e .",
    "--trusted-host evil.invalid",
    "-c /etc/passwd",
    "-ihttp://evil.invalid/simple",
    "--no-index",
    "--target=/etc",
    " -r /etc/passwd",
    "--channel=file:///etc",
)

#: Requirement strings that point at a file or URL instead of naming a distribution.
DIRECT_PIP = (
    "alpha @ file:///etc/passwd",
    "alpha@file:///etc/passwd",
    "alpha @ https://evil.invalid/alpha-1.0-py3-none-any.whl",
    "alpha @ git+https://evil.invalid/alpha.git",
    "alpha[extra] @ file:///tmp/alpha.whl",
    "alpha @ /etc/passwd",
    "file:///etc/passwd",
    "https://evil.invalid/alpha-1.0-py3-none-any.whl",
    "git+https://evil.invalid/alpha.git",
    "./alpha",
    "../alpha",
    "/etc/passwd",
    ".",
    "~/alpha",
)
#: Valid PEP 508 names that pip and uv read as a path to an archive in the cwd.
ARCHIVE_NAMES = (
    "alpha-1.0-py3-none-any.whl",
    "alpha.zip",
    "alpha-1.0.tar.gz",
    "alpha-1.0.tgz",
    "alpha-1.0.tar.bz2",
    "alpha.egg",
)
DIRECT_CONDA = (
    "file:///etc::alpha",
    "https://evil.invalid/channel::alpha",
    "../../etc::alpha",
    "/etc::alpha",
    "a/../b::alpha",
    "./channel::alpha",
    "alpha[channel='/etc']",
    'alpha[channel="../x"]',
    "alpha[build=py_0, channel=/etc]",
    'alpha[url="/etc/alpha-1.0-0.conda"]',
    "alpha[url=https://evil.invalid/alpha-1.0-0.conda]",
    "/etc/alpha-1.0-0.conda",
    "./alpha-1.0-0.conda",
    "https://evil.invalid/alpha-1.0-0.conda",
    "file:///etc/alpha-1.0-0.tar.bz2",
)

TRAVERSAL_PATHS = (
    "../../etc",
    "../etc/passwd",
    "relative/env",
    "./env",
    ".",
    "..",
    "/opt/../etc",
    "/opt/conda/../../etc",
    "/opt/env/..",
    "/opt/env/../../../etc",
    "~root/env",
    "~/../../etc",
    "~nobody",
    "~/env/../..",
    "//etc/../x",
    "env",
)
TRAVERSAL_NAMES = ("../../etc", "a/b", "..", ".", ".hidden", "-x", "/abs", "a/../b", "..\\x")
TRAVERSAL_URLS = (
    "file:///opt/../etc",
    "file:///opt/%2e%2e/etc",
    "file:///opt/.%2E/etc",
    "https://example.invalid/simple/../../x",
    "https://example.invalid/%2e%2e/x",
    "file://evil.invalid/share",
    "file://evil.invalid/etc/passwd",
    "file:///srv/%00x",
    "file:///srv/%0atouch",
)
TRAVERSAL_CHANNELS = (
    "../etc",
    "a/../../b",
    "/etc",
    "./channel",
    "~/channel",
    "..",
    "conda-forge/..",
)

BAD_URLS = (
    "ftp://evil.invalid/simple",
    "http://x;rm -rf /",
    "javascript:alert(1)",
    "http://",
    "http:///path",
    "ssh://git@evil.invalid/x",
    "git+https://evil.invalid/x",
    "s3://bucket/simple",
    "\\\\server\\share",
    "http://x|id",
    "https://example.invalid/$(id)",
    "https://example.invalid/simple --trusted-host evil.invalid",
    "https://example.invalid/simple\n--trusted-host evil.invalid",
    "http://evil.invalid/<script>",
    'https://example.invalid/simple"',
)

#: Letters that look like ASCII ones, and characters that do not show.
CYRILLIC_A, CYRILLIC_E, CYRILLIC_O, GREEK_O = "\u0430", "\u0435", "\u043e", "\u03bf"
INVISIBLE = (
    "\u200d",  # zero width joiner
    "\u200b",  # zero width space
    "\ufeff",  # byte order mark
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u00ad",  # soft hyphen
    "\u2028",  # line separator
)
CONTROLS = (
    "\x00",
    "\x07",
    "\t",
    "\x0c",
    "\r",
    "\n",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\x9b",
)


def confusables(base: str) -> Iterator[str]:
    """Lookalikes of ``base``: Cyrillic or Greek letters for Latin ones, fullwidth forms."""
    for latin, other in (("a", CYRILLIC_A), ("e", CYRILLIC_E), ("o", CYRILLIC_O), ("o", GREEK_O)):
        if latin in base:
            yield base.replace(latin, other, 1)
    yield "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and c.isalnum() else c for c in base)


def inserted(base: str, fragment: str) -> Iterator[str]:
    """``fragment`` before, inside and after ``base``."""
    middle = len(base) // 2 + 1 if base.startswith("/") else len(base) // 2
    yield fragment + base
    yield base[:middle] + fragment + base[middle:]
    yield base + fragment


def _cases() -> Iterator[Case]:
    """The explicit table; each hostile string in every field it could reach.

    Fragments are added to a valid value of the field (so that the rule that
    refuses them is the one under test, not "relative path" or "bad name"), and
    the shortest ones are also tried alone. Invisible and control characters go
    before, inside or after the value, in turn.
    """
    for field in STRICT:
        base = BASES[field][0]
        for fragment in SHELL:
            yield Case("shell", field, base + fragment)
        for fragment in SHELL[:4]:
            yield Case("shell", field, fragment.strip(" "))
        for option in OPTIONS:
            yield Case("option", field, option)
        for value in BAD_URLS if field in URLS else BAD_URLS[:3]:
            yield Case("url", field, value)
        for base in BASES[field]:
            for value in confusables(base):
                yield Case("unicode", field, value)
    for field in REQUIREMENTS:
        for option in OPTIONS[:6]:
            yield Case("option", field, f"alpha {option}")
        for value in DIRECT_PIP + DIRECT_CONDA:
            yield Case("direct-reference", field, value)
        if field.endswith("pip"):
            for value in ARCHIVE_NAMES:
                yield Case("direct-reference", field, value)
    for field in PATHS:
        for value in TRAVERSAL_PATHS:
            yield Case("traversal", field, value)
    for field in ("kernel.name", "environment name", "protect", "pip", "conda"):
        for value in TRAVERSAL_NAMES:
            yield Case("traversal", field, value)
    for field in URLS:
        for value in TRAVERSAL_URLS:
            yield Case("traversal", field, value)
    for field in ("channels", "env.channels"):
        for value in TRAVERSAL_CHANNELS:
            yield Case("traversal", field, value)
    turn = itertools.count()
    for field in FIELDS:  # free text included: these hide what a string says
        base = BASES[field][0]
        for category, characters in (("invisible", INVISIBLE), ("control", CONTROLS)):
            for char in characters:
                yield Case(category, field, list(inserted(base, char))[next(turn) % 3])


def _unique(cases: Iterator[Case]) -> list[Case]:
    return list(dict.fromkeys(cases))


CASES = _unique(_cases())


def _check_case(
    case: Case,
    directory: Path,
    capsys: pytest.CaptureFixture[str],
    attempts: list[str],
) -> None:
    """Both commands reject ``case`` with one error at its value; count it."""
    assert not CANARY.exists(), f"the canary {CANARY} exists before the test; remove it"
    manifest = directory / "hostile.yaml"
    manifest.write_text(case.manifest(), encoding="utf-8")
    expected = case.position()
    field = FIELDS[case.field]
    for command in ("validate", "plan"):
        error = assert_cli_error(capsys, manifest, directory / "state", command, attempts)
        assert (error.line, error.column) == expected, (command, case, error)
        if field.path is not None:
            assert error.rest.startswith(f"{field.path}: "), (command, case, error)
        else:  # an environment name: reported at the key, printed escaped when unprintable
            assert error.rest.startswith("environments"), (command, case, error)
    record_rejected(case.category, case.field, case.value)


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[f"{c.category}-{c.field.replace(' ', '_')}-{i}" for i, c in enumerate(CASES)],
)
def test_hostile_value_is_rejected(
    case: Case,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = guard_processes(monkeypatch)
    _check_case(case, tmp_path, capsys, attempts)


# -- whole-file attacks -------------------------------------------------------------------

_BILLION_LAUGHS = (
    'version: 1\nx0: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"x{i}: &{chr(97 + i)} [*{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}]\n"
        for i in range(1, 9)
    )
)

#: (name, manifest bytes, line, column, message fragment)
WHOLE_FILE: tuple[tuple[str, bytes, int, int, str], ...] = (
    (
        "python-object-apply",
        f"version: 1\nenvironments: !!python/object/apply:os.system ['touch {C}']\n".encode(),
        2,
        15,
        "tag '!!python/object/apply:os.system' is not allowed",
    ),
    (
        "python-object-apply-in-list",
        f"version: 1\nenvironments:\n  e:\n    prefix: /x\n    pip:\n"
        f"      - !!python/object/apply:os.system ['touch {C}']\n".encode(),
        6,
        9,
        "tag '!!python/object/apply:os.system' is not allowed",
    ),
    (
        "python-object-apply-subprocess",
        (
            "version: 1\nprotect: "
            f"!!python/object/apply:subprocess.check_output [['touch', '{C}']]\n"
        ).encode(),
        2,
        10,
        "tag '!!python/object/apply:subprocess.check_output' is not allowed",
    ),
    (
        "python-name",
        b"version: 1\nenvironments: {e: {prefix: /x, pip: [!!python/name:os.system '']}}\n",
        2,
        38,
        "tag '!!python/name:os.system' is not allowed",
    ),
    (
        "python-object-new",
        b"version: 1\nenvironments: !!python/object/new:os.system [echo]\n",
        2,
        15,
        "tag '!!python/object/new:os.system' is not allowed",
    ),
    (
        "python-module",
        b"version: 1\nprotect: [!!python/module:os '']\n",
        2,
        11,
        "tag '!!python/module:os' is not allowed",
    ),
    (
        "python-tuple",
        b"version: 1\nprotect: !!python/tuple [a, b]\n",
        2,
        10,
        "tag '!!python/tuple' is not allowed",
    ),
    (
        "local-tag",
        b"version: 1\nenvironments: {e: {prefix: !shell 'touch x'}}\n",
        2,
        28,
        "tag '!shell' is not allowed",
    ),
    (
        "verbatim-tag",
        b"version: 1\nprotect: [!<tag:yaml.org,2002:python/name:os.system> x]\n",
        2,
        11,
        "tag '!!python/name:os.system' is not allowed",
    ),
    (
        "binary-tag",
        b"version: 1\nprotect: [!!binary aGk=]\n",
        2,
        11,
        "tag '!!binary' is not allowed",
    ),
    ("set-tag", b"version: 1\nprotect: !!set {a: null}\n", 2, 10, "tag '!!set' is not allowed"),
    ("omap-tag", b"version: 1\nprotect: !!omap [a: 1]\n", 2, 10, "tag '!!omap' is not allowed"),
    ("billion-laughs", _BILLION_LAUGHS.encode(), 2, 5, "YAML anchor '&a' is not allowed"),
    (
        "alias-only",
        b"version: 1\nprotect: [*a]\n",
        2,
        11,
        "YAML alias '*a' is not allowed",
    ),
    (
        "anchor-on-prefix",
        b"version: 1\nenvironments:\n  a: {prefix: &p /opt/conda}\n  b: {prefix: *p}\n",
        3,
        15,
        "YAML anchor '&p' is not allowed",
    ),
    (
        "merge-key",
        b"version: 1\nenvironments:\n  e:\n    prefix: /x\n    <<: {prefix: /opt/conda}\n",
        5,
        5,
        "merge keys ('<<') are not allowed",
    ),
    (
        "too-large",
        b"version: 1\nprotect: [" + b'"a",' * (MAX_MANIFEST_BYTES // 4) + b"]\n",
        1,
        1,
        "the manifest is larger than 1048576 bytes (1 MiB)",
    ),
    (
        "too-large-comment",
        b"version: 1\n#" + b"x" * MAX_MANIFEST_BYTES + b"\n",
        1,
        1,
        "the manifest is larger than 1048576 bytes (1 MiB)",
    ),
    (
        "deep-lists",
        b"version: 1\nprotect: " + b"[" * 1000 + b"]" * 1000 + b"\n",
        1,
        1,
        "invalid YAML: nested too deeply",
    ),
    (
        "deep-mappings",
        b"version: 1\nenvironments: " + b"{a: " * 1000 + b"x" + b"}" * 1000 + b"\n",
        1,
        1,
        "invalid YAML: nested too deeply",
    ),
    (
        "deep-block-lists",
        b"version: 1\nprotect:\n" + b"".join(b"  " * i + b"-\n" for i in range(1, 600)),
        1,
        1,
        "invalid YAML: nested too deeply",
    ),
    (
        "nul-byte",
        b"version: 1\nprotect: [a\x00b]\n",
        2,
        12,
        "character U+0000 is not allowed in a YAML file",
    ),
    (
        "escape-byte",
        b"version: 1\nprotect: [a\x1b[2Jb]\n",
        2,
        12,
        "character U+001B is not allowed in a YAML file",
    ),
    ("not-utf8", b"version: 1\nprotect: [\xff\xfe]\n", 1, 1, "the manifest is not UTF-8 text"),
    (
        "utf16",
        "version: 1\n".encode("utf-16"),
        1,
        1,
        "the manifest is not UTF-8 text",
    ),
    (
        "two-documents",
        b"version: 1\n---\n!!python/object/apply:os.system ['x']\n",
        2,
        1,
        "expected a single YAML document",
    ),
    (
        "duplicate-key",
        b"version: 1\nenvironments:\n  e: {prefix: /a}\n  e: {prefix: /opt/conda}\n",
        4,
        3,
        "duplicate key 'e' (first defined at line 3)",
    ),
    ("not-a-mapping", f"- touch {C}\n".encode(), 1, 1, "expected a mapping, got a list"),
    ("empty", b"", 1, 1, "the manifest is empty"),
    (
        "version-object",
        b"version: !!python/object:__main__.X {}\n",
        1,
        10,
        "tag '!!python/object:__main__.X' is not allowed",
    ),
)


@pytest.mark.parametrize(
    ("content", "line", "column", "message"),
    [case[1:] for case in WHOLE_FILE],
    ids=[case[0] for case in WHOLE_FILE],
)
def test_hostile_file_is_rejected(
    content: bytes,
    line: int,
    column: int,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    attempts = guard_processes(monkeypatch)
    manifest = tmp_path / "hostile.yaml"
    manifest.write_bytes(content)
    for command in ("validate", "plan"):
        error = assert_cli_error(capsys, manifest, tmp_path / "state", command, attempts)
        assert (error.line, error.column) == (line, column), (command, error)
        assert message in error.rest, (command, error)
    record_rejected("yaml-file", "whole file", request.node.callspec.id)


# -- symlinked prefixes -------------------------------------------------------------------


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A protected image directory: a conda environment and a venv-like ``opt/venv``."""
    root = tmp_path / "image"
    (root / "opt" / "conda" / "conda-meta").mkdir(parents=True)
    (root / "opt" / "conda" / "conda-meta" / "history").write_text("==> image <==\n")
    (root / "opt" / "venv").mkdir()
    (root / "opt" / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return root


def _symlink_cases(tmp_path: Path, image: Path) -> list[tuple[str, str, str]]:
    """(name, manifest body of environment ``e``, link named in the error)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "conda-link").symlink_to(image / "opt" / "conda")
    (home / "opt-link").symlink_to(image / "opt")
    (home / "relative-link").symlink_to(os.path.relpath(image / "opt" / "venv", home))
    (home / "dangling").symlink_to(tmp_path / "nowhere")
    (home / "loop-a").symlink_to(home / "loop-b")
    (home / "loop-b").symlink_to(home / "loop-a")
    (home / "file-link").symlink_to(image / "opt" / "conda" / "conda-meta" / "history")
    (home / "chain").symlink_to(home / "conda-link")
    return [
        ("prefix-is-link", f"prefix: {home}/conda-link\n    conda: [alpha]", "conda-link"),
        ("through-link", f"prefix: {home}/opt-link/conda\n    pip: [alpha]", "opt-link"),
        ("relative-link", f"prefix: {home}/relative-link", "relative-link"),
        ("dangling-link", f"prefix: {home}/dangling", "dangling"),
        ("link-loop", f"prefix: {home}/loop-a", "loop-a"),
        ("link-to-file", f"prefix: {home}/file-link", "file-link"),
        ("chain-of-links", f"prefix: {home}/chain", "chain"),
        (
            "new-venv-under-link",
            f"prefix: {home}/opt-link/new-env\n    create: {{venv: /usr/bin/python3}}",
            "opt-link",
        ),
        (
            "new-conda-under-link",
            f'prefix: {home}/opt-link/conda/envs/x\n    create: {{python: "3.11"}}',
            "opt-link",
        ),
        ("tilde-through-link", "prefix: ~/opt-link/conda", "opt-link"),
    ]


SYMLINK_NAMES = (
    "prefix-is-link",
    "through-link",
    "relative-link",
    "dangling-link",
    "link-loop",
    "link-to-file",
    "chain-of-links",
    "new-venv-under-link",
    "new-conda-under-link",
    "tilde-through-link",
)


@pytest.mark.parametrize("name", SYMLINK_NAMES)
def test_symlinked_prefix_is_rejected(
    name: str,
    tmp_path: Path,
    image: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = {case[0]: case for case in _symlink_cases(tmp_path, image)}
    assert set(cases) == set(SYMLINK_NAMES)
    _, body, link = cases[name]
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    before = tree_hash(image)
    attempts = guard_processes(monkeypatch)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(f"version: 1\nenvironments:\n  e:\n    {body}\n", encoding="utf-8")
    for command in ("validate", "plan"):
        error = assert_cli_error(capsys, manifest, tmp_path / "state", command, attempts)
        assert (error.line, error.column) == (4, 13), error
        assert error.rest.startswith("environments.e.prefix: prefix "), error
        assert f"resolves through the symbolic link {tmp_path / 'home' / link} to " in error.rest
        assert "write the real path" in error.rest
    assert tree_hash(image) == before
    record_rejected("symlink", "prefix", name)


def test_real_path_and_aliases(
    tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real path is accepted; a second name for it would have dodged the duplicate check."""
    real = image / "opt" / "conda"
    (tmp_path / "alias").symlink_to(real)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(f"version: 1\nenvironments:\n  e: {{prefix: {real}}}\n", encoding="utf-8")
    assert run_cli(capsys, "validate", manifest)[0] == 0
    manifest.write_text(
        f"version: 1\nenvironments:\n  e: {{prefix: {real}}}\n  f: {{prefix: {tmp_path}/alias}}\n",
        encoding="utf-8",
    )
    code, _, err = run_cli(capsys, "validate", manifest)
    assert code == 1
    assert f"environments.f.prefix: prefix '{tmp_path}/alias' resolves through" in err
    # Without looking at the machine (check_prefixes=False) nothing is resolved.
    assert len(load_manifest(manifest, check_prefixes=False).environments) == 2


# -- what stays accepted ------------------------------------------------------------------

ACCEPTED_DISPLAY_NAMES = (
    f"$(touch {C})",
    f"`touch {C}`; rm -rf / && echo | cat > {C}",
    "Python 3 (données) \u2014 \u00e9t\u00e9 \u2603",
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u03b1\u03b2\u03b3 \u4e2d\u6587",
    '"quoted" \'single\' \\backslash\\ {"argv": ["sh"]}',
    "</script><img src=x onerror=alert(1)>",
    "--index-url=http://evil.invalid -r /etc/passwd",
    "pkg @ file:///etc/passwd",
    "${HOME} %PATH% ~root ../../etc",
    "\u00a0non-breaking\u3000spaces",
)


@pytest.mark.parametrize("display_name", ACCEPTED_DISPLAY_NAMES)
def test_display_name_is_stored_verbatim(
    display_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Free text lands in kernel.json through json.dump, byte for byte; nothing runs."""
    from reconciler.apply.kernels import write_kernelspec

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    attempts = guard_processes(monkeypatch)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n"
        f"    kernel: {{name: k, display_name: {yaml_quote(display_name)}}}\n",
        encoding="utf-8",
    )
    assert run_cli(capsys, "validate", manifest)[0] == 0
    (env,) = load_manifest(manifest).environments
    assert env.kernel is not None and env.kernel.display_name == display_name
    where = write_kernelspec(env.kernel, env.prefix, manifest, env.name)
    assert where == tmp_path / "jupyter" / "kernels" / "k"
    spec = json.loads((where / "kernel.json").read_text(encoding="utf-8"))
    assert spec["display_name"] == display_name
    assert spec["argv"][0] == f"{PREFIX}/bin/python"
    assert sorted(p.name for p in (tmp_path / "jupyter" / "kernels").iterdir()) == ["k"]
    assert attempts == [] and not CANARY.exists()


ACCEPTED_VALUES = (
    ("prefix", "/opt/\u0441\u0440\u0435\u0434\u0430"),  # one script per component: a real name
    ("prefix", "/home/jos\u00e9/envs/caf\u00e9"),
    ("prefix", "/opt/my env"),
    ("create.venv", "/usr/bin/python3"),
    ("pip", "alpha; python_version >= '3' and os_name == 'posix'"),
    ("pip", "alpha[extra]>=1,<2"),
    ("conda", "conda-forge::alpha >=1"),
    ("conda", "alpha[channel=conda-forge]"),
    ("conda", "alpha >=1.0|<0.5"),
    ("channels", "nvidia/label/cuda-12.4"),
    ("channels", "file:///etc"),
    ("index_url", "file:///etc"),
    ("find_links", "file:///etc"),
    ("find_links", "/etc"),
    ("index_url", "https://user:token@example.invalid/simple"),
    ("kernel.name", "py3.11-dl_x"),
    ("protect", "_openmp*"),
    ("protect", "[!a]*"),
)


@pytest.mark.parametrize(("field", "value"), ACCEPTED_VALUES)
def test_unusual_but_valid_values_are_accepted(
    field: str,
    value: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rules are not blanket bans: real names with these shapes still validate."""
    attempts = guard_processes(monkeypatch)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(Case("ok", field, value).manifest(), encoding="utf-8")
    code, out, err = run_cli(capsys, "validate", manifest)
    assert (code, err) == (0, ""), err
    assert out == f"{manifest}: valid (1 environment)\n"
    assert attempts == []


def test_local_channel_at_a_system_directory_fails_safely(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``file:///etc`` is a well-formed location: plan asks the installer, which finds nothing."""
    venv = make_venv(tmp_path / "venv")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        "version: 1\ndefaults:\n  channels: ['file:///etc']\n"
        "  pip: {index_url: 'file:///etc', find_links: ['/etc', 'file:///etc']}\n"
        f"environments:\n  e: {{prefix: {venv}, pip: [delta]}}\n",
        encoding="utf-8",
    )
    before = tree_hash(venv)
    code, out, err = run_cli(capsys, "--state-dir", tmp_path / "state", "plan", manifest)
    assert code == 1, (out, err)
    assert err.startswith("error: ") and "Traceback" not in err and "internal error" not in err
    assert "delta" in err
    assert tree_hash(venv) == before
    assert not CANARY.exists()


# -- the guards themselves ------------------------------------------------------------------


def test_payloads_would_create_the_canary(tmp_path: Path) -> None:
    """The canary check is meaningful: run through a shell, the payloads do create it."""
    canary = tmp_path / "CANARY"
    # The others need a shell that splits words ($IFS), bash quoting, or a failing command.
    inert_in_sh = ("${IFS}", "'", "$'")
    acting = [fragment for fragment in SHELL if not fragment.startswith(inert_in_sh)]
    assert len(acting) == 8
    for fragment in acting:
        command = "echo alpha" + fragment.replace(C, str(canary))
        subprocess.run(["sh", "-c", command], check=False, capture_output=True)
        assert canary.exists(), fragment
        canary.unlink()


def test_process_guard_catches_every_way_to_start_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = guard_processes(monkeypatch)
    starters: list[Callable[[], object]] = [
        lambda: subprocess.run(["true"], check=False),
        lambda: subprocess.Popen(["true"]),
        lambda: os.system("true"),
        lambda: os.posix_spawn("/bin/true", ["true"], {}),
        lambda: os.posix_spawnp("true", ["true"], {}),
        lambda: os.fork(),
        lambda: os.execv("/bin/true", ["true"]),
        lambda: os.spawnv(os.P_WAIT, "/bin/true", ["true"]),
        lambda: os.popen("true"),
    ]
    for start in starters:
        with pytest.raises(ProcessAttempted):
            start()
    assert len(attempts) == len(starters)
    assert not issubclass(ProcessAttempted, Exception)  # no `except Exception` swallows it


# -- generated cases (Hypothesis) -----------------------------------------------------------

#: Fragments that make any value hostile, free text included: they hide what it says.
_FRAGMENTS_HIDDEN = (*CONTROLS, *INVISIBLE)
#: Fragments that make any value but free text hostile.
_FRAGMENTS_STRICT = (
    *_FRAGMENTS_HIDDEN,
    "$",
    "`",
    "&",
    "\\",
    ";",
    "$(id)",
    f"`touch {C}`",
    f"; touch {C}",
    " && id",
    "${IFS}",
    CYRILLIC_A,
    "\uff41",  # fullwidth a
)

GENERATED_EXAMPLES = 200


def _generated_case(field: str, base: str, fragments: list[str], positions: list[int]) -> Case:
    value = base
    for fragment, position in zip(fragments, positions):
        at = position % (len(value) + 1)
        value = value[:at] + fragment + value[at:]
    return Case("generated", field, value)


_fields = st.sampled_from(sorted(FIELDS))


@st.composite
def hostile_cases(draw: st.DrawFn) -> Case:
    field = draw(_fields)
    base = draw(st.sampled_from(BASES[field]))
    pool = _FRAGMENTS_HIDDEN if FIELDS[field].kind == "free" else _FRAGMENTS_STRICT
    count = draw(st.integers(min_value=1, max_value=3))
    fragments = draw(st.lists(st.sampled_from(pool), min_size=count, max_size=count))
    positions = draw(st.lists(st.integers(0, 200), min_size=count, max_size=count))
    return _generated_case(field, base, fragments, positions)


@settings(
    max_examples=GENERATED_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=hostile_cases())
@example(case=Case("generated", "pip", f"alpha>=1\n--index-url=http://evil.invalid; touch {C}"))
@example(case=Case("generated", "prefix", f"/opt/env/\u202e$(touch {C})"))
@example(case=Case("generated", "kernel.display_name", "Python\u2028\u200d3"))
@example(case=Case("generated", "environment name", "dl\n"))
@example(case=Case("generated", "kernel.name", "dl\n"))
@example(case=Case("generated", "protect", "numpy\n"))
@example(case=Case("generated", "create.python", "3.11\n"))
def test_generated_hostile_values_are_rejected(
    case: Case,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = guard_processes(monkeypatch)
    directory = tmp_path / f"case-{next(_counter)}"  # one tmp_path for all examples
    directory.mkdir()
    _check_case(case, directory, capsys, attempts)


_counter = itertools.count()


# -- the count --------------------------------------------------------------------------------


def test_zz_hostile_count(request: pytest.FixtureRequest) -> None:
    """At least 200 hostile inputs, every one rejected (when the whole module ran)."""
    explicit = len(CASES) + len(WHOLE_FILE) + len(SYMLINK_NAMES)
    assert explicit >= 200
    session = request.session
    selected = {item.nodeid.split("[")[0] for item in session.items}
    module = request.node.nodeid.split("::")[0]
    names = (
        "test_hostile_value_is_rejected",
        "test_hostile_file_is_rejected",
        "test_symlinked_prefix_is_rejected",
        "test_generated_hostile_values_are_rejected",
    )
    if not all(f"{module}::{name}" in selected for name in names) or session.testsfailed:
        pytest.skip("only part of the module ran: the total is not meaningful")
    generated = len(REJECTED["generated"])
    total = sum(len(values) for values in REJECTED.values())
    assert total - generated == explicit
    assert generated >= GENERATED_EXAMPLES // 2
    print(f"\nhostile inputs rejected: {total} ({explicit} explicit, {generated} generated)")
