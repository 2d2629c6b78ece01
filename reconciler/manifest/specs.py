"""Requirement strings: pip (PEP 508, by :mod:`reconciler.pep508`, which leaves all but
the simple form to packaging) and conda (MatchSpec, by py-rattler).

Each string is checked on its own first (no options, URLs, shell
metacharacters or non-ASCII text), then the strings of one environment are
merged into one request per package: compatible specs are intersected, specs
no version can satisfy are conflicts. The merging is in
:mod:`reconciler.manifest.merge`; its names are importable from here too.
"""

from __future__ import annotations

import re
import unicodedata

from reconciler.manifest.merge import (
    MAX_MERGED_CLAUSES,
    CondaEntry,
    Conflict,
    PipEntry,
    merge_conda,
    merge_pip,
)
from reconciler.pep508 import ParsedRequirement, parse_by_packaging, parse_simple

__all__ = [
    "CHANNEL_NAME",
    "MAX_MERGED_CLAUSES",
    "CondaEntry",
    "Conflict",
    "PipEntry",
    "SpecError",
    "channel_name_problem",
    "check_conda_text",
    "invisible_character",
    "merge_conda",
    "merge_pip",
    "parse_conda",
    "parse_pip",
    "unsafe_character",
]

#: Never part of a requirement or a MatchSpec; the shell would act on them.
SHELL_METACHARACTERS = "`$|&;\\"

#: A conda channel name (``conda-forge``, ``nvidia/label/cuda-12.4``): never a path or URL.
CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*")

#: Unicode categories refused in every string: line and paragraph separators, invisible
#: format characters (zero-width joiners and spaces, bidi overrides, BOM), surrogates.
_INVISIBLE_CATEGORIES = {
    "Zl": "line separator",
    "Zp": "paragraph separator",
    "Cf": "invisible format character",
    "Cs": "surrogate",
}

_PIP_OPTIONS = {
    "-r": "requirement files are not supported, list each requirement in the manifest",
    "--requirement": "requirement files are not supported, list each requirement in the manifest",
    "-c": "constraint files are not supported, write the constraint into the requirement",
    "--constraint": "constraint files are not supported, write the constraint into the requirement",
    "-e": "editable installs are not supported",
    "--editable": "editable installs are not supported",
    "-i": "set defaults.pip.index_url instead",
    "--index-url": "set defaults.pip.index_url instead",
    "--extra-index-url": "set defaults.pip.extra_index_urls instead",
    "-f": "set defaults.pip.find_links instead",
    "--find-links": "set defaults.pip.find_links instead",
    "--no-index": "set defaults.pip.no_index instead",
}

#: Archive file names: pip and uv install ``x-1.0-py3-none-any.whl`` as a local file, although
#: it is also a valid PEP 508 name (pip's ARCHIVE_EXTENSIONS, and .egg).
_ARCHIVE_SUFFIXES = (
    ".whl",
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
    ".egg",
)

#: MatchSpec parts besides the name and version; specs with any of them are not merged.
_CONDA_EXTRA_PARTS = (
    "build",
    "build_number",
    "channel",
    "subdir",
    "md5",
    "sha256",
    "file_name",
    "namespace",
    "extras",
    "condition",
)


class SpecError(ValueError):
    """A requirement string is not acceptable; the message says why."""


def unsafe_character(
    text: str, metacharacters: str = SHELL_METACHARACTERS, *, ascii_only: bool = True
) -> str | None:
    """Why ``text`` is refused outright (non-ASCII, control or shell characters), or None."""
    # Printable ASCII holds no non-ASCII, line-break, NUL or control character (C0, DEL):
    # then only a metacharacter can be the answer, found by C-level searches.
    if text.isascii() and text.isprintable() and not any(c in text for c in metacharacters):
        return None
    for char in text:
        if ord(char) > 127 and ascii_only:
            name = unicodedata.name(char, "unnamed character")
            return (
                f"{text!r} contains the non-ASCII character {char!r} "
                f"(U+{ord(char):04X} {name}); write it in plain ASCII"
            )
        if char == "\n" or char == "\r":
            return f"{text!r} contains a line break"
        if char == "\0":
            return f"{text!r} contains a NUL character"
        if ord(char) < 32 or ord(char) == 127:
            return f"{text!r} contains the control character U+{ord(char):04X}"
    for char in text:
        if char in metacharacters:
            return f"{text!r} contains the shell metacharacter {char!r}"
    return None


def invisible_character(text: str) -> str | None:
    """Why ``text`` hides what it says (control, line-break or invisible characters), or None.

    Applied to every key and string of a manifest, free text included.
    """
    if text.isascii() and text.isprintable():
        return None  # no control character; no ASCII character is invisible or a separator
    problem = unsafe_character(text, "", ascii_only=False)
    if problem:
        return problem
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":  # C1 controls (U+0080..U+009F); C0 and DEL are handled above
            return f"{text!r} contains the control character U+{ord(char):04X}"
        if category in _INVISIBLE_CATEGORIES:
            name = unicodedata.name(char, _INVISIBLE_CATEGORIES[category])
            return (
                f"{text!r} contains the {_INVISIBLE_CATEGORIES[category]} U+{ord(char):04X} "
                f"({name}); remove it"
            )
    return None


def channel_name_problem(text: str) -> str | None:
    """Why ``text`` is not a conda channel name (a path, a URL, '..'), or None."""
    if CHANNEL_NAME.fullmatch(text) and not any(part in (".", "..") for part in text.split("/")):
        return None
    return (
        f"channel {text!r} is neither a channel name (conda-forge) nor an http(s):// or file:// URL"
    )


def _option(text: str) -> str:
    word = text.strip().split()[0]
    return word.split("=", 1)[0] if word.startswith("--") else word[:2]


def parse_pip(text: str) -> ParsedRequirement:
    """The PEP 508 requirement ``text``; SpecError when it is not a plain requirement."""
    stripped = text.strip()
    if stripped.startswith("-"):
        option = _option(stripped)
        hint = _PIP_OPTIONS.get(option, "only PEP 508 requirements are accepted")
        raise SpecError(f"pip option {option!r} is not allowed in a requirement; {hint}")
    problem = unsafe_character(text, SHELL_METACHARACTERS.replace(";", ""))
    if problem:
        raise SpecError(problem)
    requirement = parse_simple(stripped)
    if requirement is None:
        requirement = _by_packaging(text, stripped)
    if requirement.name.lower().endswith(_ARCHIVE_SUFFIXES):
        raise SpecError(
            f"{text!r} names a file: pip and uv read a requirement ending in "
            f"{next(x for x in _ARCHIVE_SUFFIXES if requirement.name.lower().endswith(x))!r} "
            "as a path to an archive; publish the distribution to an index or a "
            "defaults.pip.find_links directory"
        )
    if requirement.url is not None:
        raise SpecError(
            f"direct reference {text!r} is not allowed (name @ URL); publish the "
            "distribution to an index or a defaults.pip.find_links directory"
        )
    return requirement


def _by_packaging(text: str, stripped: str) -> ParsedRequirement:
    from packaging.requirements import InvalidRequirement

    try:
        return parse_by_packaging(stripped)
    except InvalidRequirement as exc:
        reason = _first_line(str(exc))
        if "://" in stripped:
            raise SpecError(
                f"{text!r} contains a URL; URLs are not allowed in requirements, "
                "configure the index in defaults.pip"
            ) from None
        if ";" in stripped:
            raise SpecError(
                f"{text!r} contains the shell metacharacter ';' outside a valid "
                f"environment marker ({reason})"
            ) from None
        raise SpecError(f"invalid requirement {text!r}: {reason}") from None


def check_conda_text(text: str) -> None:
    """The checks of :func:`parse_conda` that need no parser; SpecError when ``text`` fails one.

    Run on every conda string, also when its parse is remembered (``ValidationMemo``).
    """
    stripped = text.strip()
    if stripped.startswith("-"):
        raise SpecError(
            f"conda option {_option(stripped)!r} is not allowed in a conda spec; "
            "write a MatchSpec such as 'numpy>=1.26'"
        )
    if "://" in stripped:
        raise SpecError(
            f"{text!r} contains a URL; URLs are not allowed in conda specs, "
            "add the channel to 'channels'"
        )
    # '|' is conda's own "or" in version specs (">=1.0|<0.5"): allowed here.
    problem = unsafe_character(text, SHELL_METACHARACTERS.replace("|", ""))
    if problem:
        raise SpecError(problem)
    if _CONDA_URL_KEY.search(stripped):
        raise SpecError(
            f"{text!r} names a package file (url=); direct references are not allowed, "
            "add the channel to 'channels'"
        )
    if "::" in stripped:
        _check_spec_channel(text, stripped.split("::", 1)[0])
    for channel in _CONDA_CHANNEL_KEY.findall(stripped):
        _check_spec_channel(text, channel)
    if not re.match(r"[A-Za-z0-9_*]", stripped):  # a path: ./x.conda, /srv/x.conda, ~/x
        raise SpecError(
            f"invalid conda spec {text!r}: start with a package or channel name; "
            "paths to package files are not allowed, add the channel to 'channels'"
        )


def parse_conda(text: str) -> tuple[str, str | None, bool]:
    """``(name, version, plain)`` of the conda MatchSpec ``text``; SpecError when unacceptable."""
    check_conda_text(text)
    stripped = text.strip()
    try:
        from rattler import MatchSpec
    except ImportError:  # Python 3.9: no py-rattler; conda operations fail later, clearly
        return _parse_conda_without_rattler(stripped)
    try:
        spec = MatchSpec(stripped, strict=True)
    except Exception as exc:  # rattler raises its own exception classes
        raise SpecError(f"invalid conda spec {text!r}: {_first_line(str(exc))}") from None
    if spec.channel is not None:  # [channel=...] as well as channel::name
        _check_spec_channel(text, str(spec.channel.name))
    if "url=" in str(spec):  # rattler reads "/path/to/pkg-1.0-0.conda" as a package file
        raise SpecError(
            f"{text!r} is a path to a package file; direct references are not allowed, "
            "add the channel to 'channels'"
        )
    name = str(spec.name.normalized) if spec.name is not None else ""
    if not re.fullmatch(r"[a-z0-9_][a-z0-9_.-]*", name):
        raise SpecError(
            f"invalid conda spec {text!r}: the package name {name!r} must start with a "
            "letter, a digit or '_'"
        )
    plain = all(not getattr(spec, part, None) for part in _CONDA_EXTRA_PARTS)
    version = str(spec.version) if spec.version is not None else None
    return name, version, plain


#: The bracket key naming a package file: ``numpy[url="/srv/numpy.conda"]``.
_CONDA_URL_KEY = re.compile(r"\[[^\]]*\burl\s*=", re.IGNORECASE)
#: The bracket key naming a channel: ``numpy[channel=conda-forge]``.
_CONDA_CHANNEL_KEY = re.compile(r"[\[,]\s*channel\s*=\s*[\"']?([^\"',\]]*)", re.IGNORECASE)


def _check_spec_channel(text: str, channel: str) -> None:
    """A spec may name a channel (``conda-forge::numpy``), never a path to one."""
    if channel_name_problem(channel) is not None:
        raise SpecError(
            f"{text!r} names the channel {channel!r}, which is not a channel name; a spec "
            "may only name a channel (conda-forge::numpy); add local channels to 'channels'"
        )


_PLAIN_CONDA = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*([<>=!~0-9][^\s\[:]*)?$")


def _parse_conda_without_rattler(text: str) -> tuple[str, str | None, bool]:
    match = _PLAIN_CONDA.match(text)
    if match:
        return match.group(1).lower(), match.group(2), True
    name = re.match(r"^(?:[^\s:]+::)?([A-Za-z0-9_][A-Za-z0-9_.-]*)", text)
    if name is None:
        raise SpecError(f"invalid conda spec {text!r}: no package name")
    return name.group(1).lower(), None, False


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "unknown reason"
    return line[:1].lower() + line[1:]
