"""When pip or uv fails: a refusal or an error, one clear line and a hint, and the undo.

A resolver's "no solution" is data (the plan shows it as a refusal); a refused
credential, a network fault or a full disk is an error that names its cause. A
failed install is rolled back: what it left in the environment is removed again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from reconciler.backends.pip_args import HTTP_READ_TIMEOUT, HTTP_RETRIES
from reconciler.backends.process import Completed, redact
from reconciler.errors import BackendError, ReconcilerError
from reconciler.manifest.model import PipSettings

__all__ = [
    "checked_install",
    "locked_failure",
    "resolution_refusal",
    "rolled_back_on_failure",
    "unavailable",
]


def _failure(proc: Completed) -> str:
    text = (proc.stderr or proc.stdout).strip()
    return redact(text)


# The patterns are strings, compiled by the first failure that needs them (``re`` keeps
# them): a run that fails nothing compiles none (issue 13: ~2 ms at import).

# pip's "not found" ("No matching distribution found for x", "Could not find a version
# that satisfies the requirement x") is data as well: :func:`unavailable` says which.
_NO_SOLUTION = (
    r"(?i)No solution found|ResolutionImpossible|conflicting dependencies|Cannot install|"
    r"No matching distribution found|Could not find a version that satisfies"
)


# uv: "error: ...", "  cause: ..." (older: "Caused by: ..."); pip: "ERROR: ...".
_HEADLINE = r"(?i)^\s*(?:error|cause|caused by)\s*:\s*(?P<text>\S.*)$"
_AUTH = r"(?i)\b(401 Unauthorized|403 Forbidden|401 Error|403 Error)"
_AUTH_UV_HINT = r"(?i)lack of valid authentication credentials"
_DISK_FULL = r"No space left on device|os error 28|Errno 28|ENOSPC|Disk quota exceeded"
_NETWORK = (
    r"(?i)Request failed after|timed out|error sending request|Failed to fetch|"
    r"HTTP status (?:server|client) error|error decoding response body|Hash mismatch|"
    r"Connection refused|end of file before message length|ReadTimeout|HTTPError"
)


def _auth_failure(message: str) -> str | None:
    """``401 Unauthorized`` (or 403) when the index refused the credentials, else None."""
    match = re.search(_AUTH, message)
    if match is not None:
        return match.group(1)
    return "401 Unauthorized" if re.search(_AUTH_UV_HINT, message) else None


def _summary(message: str) -> str:
    """The installer's error and its causes on one line (the last line alone is often
    a hash or a URL): ``Failed to download `x==1`: Hash mismatch for `x==1```."""
    parts: list[str] = []
    for line in message.splitlines():
        match = re.match(_HEADLINE, line)
        if match and match.group("text").strip() not in parts:
            parts.append(match.group("text").strip())
    if not parts:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        parts = lines[-1:]
    text = ": ".join(parts)
    return text if len(text) <= 700 else text[:697] + "..."


def _network_hint(proc: Completed) -> str:
    return (
        f"check that the package index is reachable and serves complete files; each "
        f"request was retried {os.environ.get('UV_HTTP_RETRIES') or HTTP_RETRIES} time(s) "
        f"with a {os.environ.get('UV_HTTP_TIMEOUT') or HTTP_READ_TIMEOUT} s read timeout "
        f"(UV_HTTP_RETRIES, UV_HTTP_TIMEOUT); the command was: {proc.display}"
    )


def resolution_refusal(proc: Completed, what: str) -> str:
    """The resolver's message when a failed dry run is its 'no solution' (data: a refusal);
    anything else raises a :class:`BackendError`.

    uv reports an index that refused the credentials (401/403) as "no solution" (the
    package was not found): that is an error about the index, not a refusal.
    """
    message = _failure(proc)
    auth = _auth_failure(message)
    if auth is not None:
        raise BackendError(
            f"{what} failed: the package index refused the request ({auth}): {_summary(message)}",
            hint="check the credentials in the index URL of the manifest; the command was: "
            f"{proc.display}",
        )
    if re.search(_NO_SOLUTION, message) and not proc.signalled:  # a killed resolver decided nothing
        return message
    hint = f"the command was: {proc.display}"
    if re.search(_NETWORK, message):
        hint = _network_hint(proc)
    raise BackendError(
        f"{what} failed ({proc.exit_text}): {_summary(message)}"
        if message
        else f"{what} failed ({proc.exit_text})",
        hint=hint,
    )


#: How an interrupted Python installer ends: the interpreter's last line (during start-up
#: too), or pip's own words when it catches the interrupt.
_INTERRUPTED = r"(?m)^KeyboardInterrupt$|^ERROR: Operation cancelled by user"


def checked_install(proc: Completed, name: str, python: Path) -> Completed:
    """``proc`` when the install succeeded; else a :class:`BackendError` naming the cause
    (a full disk, refused credentials, the network) with what to do about it."""
    if proc.returncode == 0:
        return proc
    message = _failure(proc)
    summary = _summary(message) if message else proc.exit_text
    if message and proc.signalled:
        summary = f"{proc.exit_text}: {summary}"
    elif re.search(_INTERRUPTED, message):  # pip (Python) caught the SIGINT and exited
        summary = f"interrupted (Ctrl-C, or a notebook's stop button), {proc.exit_text}"
    prefix = python.parent.parent
    hint = f"the command was: {proc.display}"
    if re.search(_DISK_FULL, message):
        text = (
            f"{name} install into {prefix} failed: the disk is full (no space left on "
            f"device): {summary}"
        )
        hint = (
            "free space on the file system of the path named in the error (the "
            "environment, uv's cache or TMPDIR), then run apply again"
        )
    else:
        text = f"{name} install into {prefix} failed: {summary}"
        if _auth_failure(message) is not None:
            hint = "check the credentials in the index URL of the manifest; " + hint
        elif re.search(_NETWORK, message):
            hint = _network_hint(proc)
    raise BackendError(
        text, hint=hint, output=f"$ {proc.display}\n{redact(proc.stdout)}\n{redact(proc.stderr)}"
    )


_HASH_MISMATCH = r"Hash mismatch for `?(?P<what>[^`\s:]+)|THESE PACKAGES DO NOT MATCH"
_PIP_MISMATCHED = r"(?m)^\s+([A-Za-z0-9._-]+==[^\s:]+)(?: from |:)"
_LOCKED_MISSING = (
    r"(?i)No solution found|was not found|No matching distribution|Could not find a version|"
    r"\b404\b"
)


def locked_failure(proc: Completed, python: Path) -> Completed:
    """A locked install whose file's hash differs, or whose file is gone, is one sentence
    (nothing was installed: the installer checks every file before it installs any)."""
    if proc.returncode == 0:
        return proc
    message = _failure(proc)
    prefix = python.parent.parent
    mismatch = re.search(_HASH_MISMATCH, message)
    output = f"$ {proc.display}\n{redact(proc.stdout)}\n{redact(proc.stderr)}"
    if mismatch is not None:
        # pip names the file on the line after its banner: "    x==1.0 from https://...".
        named = mismatch.group("what") or next(iter(re.findall(_PIP_MISMATCHED, message)), "NAME")
        what = str(named)
        raise BackendError(
            f"the file of {what} does not match the sha256 in the lock file; nothing was "
            f"installed into {prefix}",
            hint="if it was republished on purpose, lock it again (`reconciler lock MANIFEST "
            f"--upgrade-package {what.split('==')[0]}`); otherwise check the package index",
            output=output,
        )
    if re.search(_LOCKED_MISSING, message) and _auth_failure(message) is None:
        raise BackendError(
            f"a file in the lock file can no longer be found ({_summary(message)}); nothing "
            f"was installed into {prefix}",
            hint="check the package index and find_links, or lock again (`reconciler lock "
            "MANIFEST --upgrade`)",
            output=output,
        )
    return proc


class _Snapshot:
    """The entries of an environment's site-packages and ``bin`` before an install.

    When the installer fails, what it created and left behind (uv leaves a module
    and a ``*.dist-info`` without its payload when the disk fills up) is removed
    again: the environment goes back to how it was. Entries that existed before are
    never touched. The environment lock is held, so nothing else installs meanwhile.
    """

    def __init__(self, python: Path) -> None:
        from reconciler.state.python import find_site_packages

        prefix = python.parent.parent
        site, _ = find_site_packages(prefix)
        self._dirs = [d for d in (site, prefix / "bin") if d is not None]
        self._before = {d: set(_listdir(d)) for d in self._dirs}

    def roll_back(self) -> tuple[list[str], list[str]]:
        """Remove new entries; ``(removed, could not remove)`` as names."""
        removed: list[str] = []
        kept: list[str] = []
        for directory in self._dirs:
            for name in sorted(set(_listdir(directory)) - self._before[directory]):
                path = directory / name
                try:
                    if path.is_dir() and not path.is_symlink():
                        import shutil  # only to roll back a failed install

                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed.append(name)
                except OSError:
                    kept.append(str(path))
        return removed, kept


def _listdir(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


@contextmanager
def rolled_back_on_failure(python: Path, name: str) -> Iterator[None]:
    """Run an install; if it fails (or is stopped), undo what it left in the environment."""
    snapshot = _Snapshot(python)
    try:
        yield
    except ReconcilerError as exc:
        removed, kept = snapshot.roll_back()
        if removed or kept:
            exc.message += _rollback_note(name, removed, kept)
            exc.args = (exc.message,)
        raise


def _rollback_note(name: str, removed: Sequence[str], kept: Sequence[str]) -> str:
    note = ""
    if removed:
        note += f"; removed what the failed {name} install had left: {', '.join(removed)}"
    if kept:
        note += f"; could not remove {', '.join(kept)}: remove it by hand"
    else:
        note += "; nothing it added is left in the environment"
    return note


# What the installers say they could not find: uv "there is no version of x==9",
# "x was not found in the package registry", "x==1.0 has no usable wheels", "only
# x<=1.1 is available and you require x>=5"; pip "satisfies the requirement x==9",
# "No matching distribution found for x".
_NAMED = (
    r"(?:there is no version of|satisfies the requirement|distribution found for|"
    r"is available and you require)\s+`?(?P<req>[A-Za-z0-9][^\s`,]*)|"
    r"(?P<name>[A-Za-z0-9][^\s`,]*)`? (?:was not found in|has no usable wheels|"
    r"has no wheels)"
)
_NEWEST_SHOWN = 3


def unavailable(
    message: str, requirements: Sequence[str], settings: PipSettings
) -> tuple[str, str] | None:
    """``(sentence, hint)`` when a failed resolution is a distribution that the
    repositories do not have as a wheel (no such project, no such version, only a
    source distribution); None when it is something else (a real conflict).

    What the repositories hold is read from their listings (a ``find_links``
    directory, the index's project page), never from the installer's output, which
    for pip is the whole version list.
    """
    # The requirement answers of the plan (reconciler.plan.requirements): a warm
    # refusal parses nothing and imports neither packaging's parser nor its markers.
    from reconciler.backends.metadata import listing, sources_text
    from reconciler.plan.requirements import ParsedRequirement, contains, parse

    requested: dict[str, ParsedRequirement] = {}
    for text in requirements:
        req = parse(text)
        if req is not None:
            requested[req.key] = req
    asked: dict[str, ParsedRequirement] = {}
    for match in re.finditer(_NAMED, message):
        req = parse((match.group("req") or match.group("name")).rstrip(".:;"))
        if req is not None:
            asked.setdefault(req.key, requested.get(req.key, req))
    for name, req in asked.items():  # only what the installer named: no lookups otherwise
        found = listing(name, settings)
        shown = f"{req.name}{req.spec}"
        shown += " was asked for" if name in requested else " is required by what was asked for"
        if found is None:
            return (
                f"{shown}, but no distribution named {req.name!r} is on {sources_text(settings)}",
                "check the name in the manifest (a typo?) and the repositories it uses",
            )
        matching = [v for v in found.versions() if contains(req.spec, v)]
        wheels = [v for v in found.versions(wheels_only=True) if v in matching]
        if not matching:
            newest = ", ".join(found.versions()[:_NEWEST_SHOWN]) or "none"
            return (
                f"{shown}, but no version of {req.name} on {found.source} "
                f"matches it (the newest there: {newest})",
                "change the version in the manifest to one the repository has",
            )
        if not wheels:
            return (
                f"{req.name} {matching[0]} has only a source distribution on "
                f"{found.source} and reconciler never builds packages",
                f"build a wheel into a wheelhouse (`pip wheel --no-deps '{req.name}=="
                f"{matching[0]}' -w DIR`) and add that directory to `find_links` in the manifest",
            )
    return None
