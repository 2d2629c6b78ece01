"""The no-op fast path: is everything exactly as it was when the manifest was last met?

Every app start runs ``reconciler apply``; nearly always nothing changed since
the last run. Re-planning costs imports (YAML, packaging, ...) that dominate the
run. This module, which imports nothing heavy, remembers a **stamp** of every
input the planner read when it last found (or made) a manifest fully met:

* the reconciler version and the manifest's bytes;
* per environment: the names of ``conda-meta/*.json`` records and of the
  ``site-packages`` entries (a package install, removal or version change
  renames or adds one), ``conda-meta/pinned`` and ``frozen``, ``pyvenv.cfg``,
  and the size and mtime of ``conda-meta/history`` and ``pyvenv.cfg`` (the image's
  identity);
* the kernelspec files the manifest registers;
* the tool's own state files (baseline, owned, journal) by size and mtime;
* for ``plan --env-prefix PATH``: which file PATH and each environment's prefix is
  (device and inode, as ``os.path.samefile`` compares them), since they decide
  which environment PATH names;
* for a pending plan, the *sources*: the local ``find-links`` directories (each
  file's name, inode, size, mtime and ctime); and the files inside the environments
  its output depends on (the clash check's targets, each environment's interpreter):
  whether each exists, and its inode, size, mtime and ctime.

If the stamp computed now equals the remembered one, the plan would be the same
empty plan: ``apply`` prints its one line and ``plan`` what the full path printed
for the same options, without planning. A pending plan is remembered with the
*answers* of the uv previews it ran (:func:`reconciler.backends.speculative.answer`),
and only when it consulted nothing else the stamp does not cover (no index, no
other process, no conda solve: :mod:`reconciler.backends.outside`); the entry point
replays it when the stamp holds and the same previews, asked again, answer the same.
Anything else (a missing or unreadable cache, another manifest, any change) falls
back to the full planner, which is the authority. The cache is derived data.
"""

from __future__ import annotations

import os
from stat import S_ISLNK

from reconciler.digest import sha256

# typing is not imported at run time: it costs more than the whole no-op answer.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from typing import Any

__all__ = [
    "CACHE", "Hit", "Inputs", "Remembered", "matches", "measure", "remember", "remembered",
]  # fmt: skip

#: NUL-separated fields, not JSON: ``json`` imports ``re`` (with ``enum``), which costs
#: more than the rest of the fast path together. NUL is the one character no path holds.
CACHE = os.path.join("cache", "noop.stamps")
_MAGIC = "reconciler no-op stamps"
FORMAT = 5  # 5: pending plans (sources, exit code, answers)
#: Entries kept: an apply and a few plan renderings of a few manifests.
KEPT = 16
_LISTS = ("prefixes", "site_dirs", "files", "state_files", "identities", "sources", "checked")


class Inputs:
    """What a stamp covers: paths recorded by the last full run for one manifest."""

    def __init__(
        self,
        prefixes: Sequence[str],
        site_dirs: Sequence[str],
        files: Sequence[str],
        state_files: Sequence[str],
        identities: Sequence[str] = (),
        sources: Sequence[str] = (),
        checked: Sequence[str] = (),
    ) -> None:
        self.prefixes = list(prefixes)
        self.site_dirs = list(site_dirs)
        self.files = list(files)  # read whole (kernelspecs)
        self.state_files = list(state_files)  # size + mtime
        self.identities = list(identities)  # which file each is (device + inode)
        self.sources = list(sources)  # a directory's files (or a file): their stamps
        self.checked = list(checked)  # files in an environment: link and file stamps

    def to_json(self) -> dict[str, list[str]]:
        """JSON-ready form."""
        return {
            "prefixes": self.prefixes,
            "site_dirs": self.site_dirs,
            "files": self.files,
            "state_files": self.state_files,
            "identities": self.identities,
            "sources": self.sources,
            "checked": self.checked,
        }


class Hit:
    """A remembered no-op that still holds: its environment count and, for ``plan``,
    the exact output the full path printed, its exit code, and the answers its uv
    previews must give again (none for a plan with nothing pending)."""

    def __init__(
        self, count: int, output: str | None, code: int = 0, answers: Sequence[str] = ()
    ) -> None:
        self.count = count
        self.output = output
        self.code = code
        self.answers = list(answers)


def _listing(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return ["<missing>"]


def _content(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b"<missing>"


def _meta(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "<missing>"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _source(path: str) -> list[str]:
    """A directory's entries (or a file), each with its inode, size, mtime and ctime (a
    wheel written over in place with its size and mtime put back has a new ctime)."""
    try:
        entries = sorted(os.listdir(path))
    except NotADirectoryError:
        return [_file_stamp(path)]
    except OSError:
        return ["<missing>"]
    return [f"{name}:{_file_stamp(os.path.join(path, name))}" for name in entries]


def _file_stamp(path: str) -> str:
    try:
        return _stat_stamp(os.stat(path))
    except OSError:
        return "<missing>"


def _stat_stamp(st: os.stat_result) -> str:
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _checked(path: str) -> str:
    """The path itself (a symbolic link counts as existing) and, for a link, the file it
    names."""
    try:
        st = os.lstat(path)
    except OSError:
        return "<missing>"
    own = _stat_stamp(st)
    return f"{own}|{_file_stamp(path)}" if S_ISLNK(st.st_mode) else own


def _identity(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "<missing>"
    # The real path too: a prefix moved and replaced by a symbolic link to it is the
    # same file, but a manifest naming it no longer validates.
    return f"{st.st_dev}:{st.st_ino}:{os.path.realpath(path)}"


#: What :func:`stamp` reads of each kind of path (``checked`` aside).
_READS = {
    "listing": _listing, "content": _content, "meta": _meta, "identity": _identity,
    "source": _source,
}  # fmt: skip


def _parts(inputs: Inputs, read: Callable[[str, str], Any]) -> Iterator[tuple[Any, ...]]:
    """What :func:`stamp` hashes of ``inputs`` after the call's own fields and before
    ``checked``, a tuple of parts each, with ``read(kind, path)`` reading each path."""
    for prefix in inputs.prefixes:
        yield ("prefix", prefix, *read("listing", os.path.join(prefix, "conda-meta")))
        for name in ("conda-meta/pinned", "conda-meta/frozen", "pyvenv.cfg"):
            yield (read("content", os.path.join(prefix, name)),)
        # A venv's image identity is its pyvenv.cfg's bytes and mtime (a conda
        # environment's, its history's).
        yield (read("meta", os.path.join(prefix, "conda-meta", "history")),)
        yield (read("meta", os.path.join(prefix, "pyvenv.cfg")),)
    for site in inputs.site_dirs:
        yield ("site", site, *read("listing", site))
    for path in inputs.files:
        yield ("file", path, read("content", path))
    for path in inputs.state_files:
        yield ("state", path, read("meta", path))
    for path in inputs.identities:
        yield ("identity", path, read("identity", path))
    for path in inputs.sources:
        yield ("source", path, *read("source", path))


def measure(inputs: Inputs) -> dict[tuple[str, str], Any]:
    """What :func:`stamp` reads of ``inputs`` (all but ``checked``), read now: a plan reads
    it beside its dry run (:func:`reconciler.backends.process.beside`) and its stamp
    takes it at the end, :func:`remember` recording nothing when any of it was modified
    since the plan started (``unchanged_since_ns``), as for what it reads itself."""
    read: dict[tuple[str, str], Any] = {}

    def reading(kind: str, path: str) -> Any:
        found = read[kind, path] = _READS[kind](path)
        return found

    for _ in _parts(inputs, reading):
        pass
    return read


def stamp(
    version: str,
    manifest: bytes,
    selection: Iterable[str],
    inputs: Inputs,
    measured: dict[tuple[str, str], Any] | None = None,
) -> str:
    """The hash of everything the no-op decision depends on; what ``measured``
    (:func:`measure`) holds is taken from it."""
    h = sha256()
    known = measured or {}

    def read(kind: str, path: str) -> Any:
        found = known.get((kind, path))
        return _READS[kind](path) if found is None else found

    def add(*parts: str | bytes) -> None:
        # One update per call (50 site-packages of 1,000 entries): the same digest as
        # one update per part and separator.
        h.update(
            b"".join((part if isinstance(part, bytes) else part.encode()) + b"\0" for part in parts)
        )

    add(version, manifest, *sorted(selection))
    for parts in _parts(inputs, read):
        add(*parts)
    for path in inputs.checked:
        add("checked", path, _checked(path))
    digest: str = h.hexdigest()
    return digest


def _key(manifest: bytes, selection: Iterable[str]) -> str:
    h = sha256()
    h.update(manifest)
    return f"{h.hexdigest()}:{','.join(sorted(selection))}"


def _encode(entries: dict[str, dict[str, Any]]) -> str | None:
    """The cache file's text; None when a field holds a NUL (then nothing is remembered)."""
    fields = [_MAGIC, str(FORMAT), str(len(entries))]
    for key, entry in entries.items():
        output = entry.get("output")
        fields += [key, entry["stamp"], str(entry["count"])]
        fields += ["1", output] if isinstance(output, str) else ["0", ""]
        answers = entry.get("answers", [])
        fields += [str(entry.get("code", 0)), str(len(answers)), *answers]
        for name in _LISTS:
            paths = entry["inputs"][name]
            fields += [str(len(paths)), *paths]
    if any("\0" in f for f in fields):
        return None
    return "\0".join(fields)


def _decode(text: str) -> dict[str, dict[str, Any]]:
    """The entries of the cache file's text; empty when it is not exactly what
    :func:`_encode` writes (a damaged cache is a miss, never a guess)."""
    fields = text.split("\0")
    if fields[:2] != [_MAGIC, str(FORMAT)] or len(fields) < 3 or not fields[2].isdigit():
        return {}
    entries: dict[str, dict[str, Any]] = {}
    at = 3
    try:
        for _ in range(int(fields[2])):
            key, stamp, count, has_output, output, code, n_answers = fields[at : at + 7]
            at += 7
            if not count.isdigit() or has_output not in ("0", "1"):
                return {}
            if code not in ("0", "2", "3") or not n_answers.isdigit():
                return {}
            answers = fields[at : at + int(n_answers)]
            if len(answers) != int(n_answers):
                return {}
            at += len(answers)
            inputs: dict[str, list[str]] = {}
            for name in _LISTS:
                if not fields[at].isdigit():
                    return {}
                n = int(fields[at])
                inputs[name] = fields[at + 1 : at + 1 + n]
                if len(inputs[name]) != n:
                    return {}
                at += 1 + n
            entry: dict[str, Any] = {"stamp": stamp, "inputs": inputs, "count": int(count)}
            if has_output == "1":
                entry["output"] = output
            if answers:
                entry["code"], entry["answers"] = int(code), answers
            entries[key] = entry
    except (ValueError, IndexError):
        return {}
    return entries if at == len(fields) else {}


def _load(state_dir: str) -> dict[str, dict[str, Any]]:
    try:
        with open(os.path.join(state_dir, CACHE), encoding="utf-8") as f:
            return _decode(f.read())
    except (OSError, ValueError):
        return {}


class Remembered:
    """The entry remembered for a manifest's bytes and a selection, not yet checked."""

    def __init__(self, manifest: bytes, selection: Sequence[str], entry: dict[str, Any]) -> None:
        self._manifest = manifest
        self._selection = selection
        self._entry = entry

    @property
    def pending(self) -> bool:
        """A pending plan's: its replay needs the answers of its previews."""
        return bool(self._entry.get("answers"))

    @property
    def answers(self) -> list[str]:
        """A pending plan's answers of its previews (:func:`speculative.answer`)."""
        answers: list[str] = self._entry.get("answers", [])
        return answers

    def check(self, version: str) -> Hit | None:
        """A :class:`Hit` when the stamp computed now is the remembered one."""
        entry = self._entry
        inputs = Inputs(**entry["inputs"])
        if entry["stamp"] != stamp(version, self._manifest, self._selection, inputs):
            return None
        answers = entry.get("answers", [])
        return Hit(entry["count"], entry.get("output"), entry.get("code", 0), answers)


def remembered(state_dir: str, manifest_path: str, selection: Sequence[str]) -> Remembered | None:
    """The entry for the manifest's bytes now and ``selection``, if there is one."""
    try:
        with open(manifest_path, "rb") as f:
            manifest = f.read(1_048_577)
    except OSError:
        return None
    entry = _load(state_dir).get(_key(manifest, selection))
    return None if entry is None else Remembered(manifest, selection, entry)


def matches(
    state_dir: str, version: str, manifest_path: str, selection: Sequence[str]
) -> Hit | None:
    """A :class:`Hit` when the manifest is known to be met by the environments exactly
    as they are now (or a pending plan's, whose previews must answer the same); None
    when the full planner must decide."""
    found = remembered(state_dir, manifest_path, selection)
    return None if found is None else found.check(version)


def _modified_since(inputs: Inputs, since_ns: int) -> bool:
    """True when anything the stamp covers was modified at or after ``since_ns``."""
    paths = [*inputs.site_dirs, *inputs.files, *inputs.state_files, *inputs.sources]
    for source in inputs.sources:  # a file rewritten in place leaves its directory as it was
        try:
            files = [os.path.join(source, name) for name in os.listdir(source)]
        except NotADirectoryError:
            files = [source]
        except OSError:
            continue
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if max(st.st_mtime_ns, st.st_ctime_ns) >= since_ns:
                return True
    for path in inputs.checked:  # (one missing now is in the stamp as missing)
        stats = []
        try:
            stats.append(os.lstat(path))
            if S_ISLNK(stats[0].st_mode):
                stats.append(os.stat(path))  # and the file the link names
        except OSError:
            pass
        if any(max(st.st_mtime_ns, st.st_ctime_ns) >= since_ns for st in stats):
            return True
    for prefix in inputs.prefixes:
        paths.append(os.path.join(prefix, "conda-meta"))
        paths += [
            os.path.join(prefix, name)
            for name in ("conda-meta/pinned", "conda-meta/frozen", "conda-meta/history")
        ]
        paths.append(os.path.join(prefix, "pyvenv.cfg"))
    # A path that came to name another file (a symlink made, a directory replaced)
    # changed the directory that holds it.
    paths += [os.path.dirname(os.path.abspath(path)) for path in inputs.identities]
    for path in paths:
        try:
            if os.stat(path).st_mtime_ns >= since_ns:
                return True
        except OSError:
            continue
    return False


def remember(
    state_dir: str,
    version: str,
    manifest: bytes,
    selection: Sequence[str],
    inputs: Inputs,
    count: int,
    *,
    output: str | None = None,
    unchanged_since_ns: int | None = None,
    code: int = 0,
    answers: Sequence[str] = (),
    measured: dict[tuple[str, str], Any] | None = None,
) -> None:
    """Record that the manifest is met now; best effort, and only if it changed.

    ``output``: what a no-op ``plan`` printed, replayed by the next one; with
    ``answers``, what a pending plan printed and its exit ``code``, replayed by the
    next one whose previews answer the same.
    ``unchanged_since_ns``: when the run that found the manifest met started; if
    anything the stamp covers was modified since, nothing is recorded (the run may
    have read the environment before that change). ``measured``: what :func:`measure`
    read of the inputs since then (only with ``unchanged_since_ns``).
    """
    import contextlib

    if unchanged_since_ns is None:
        measured = None  # read before a start that nothing checks it against
    elif _modified_since(inputs, unchanged_since_ns):
        return
    entries = _load(state_dir)
    key = _key(manifest, selection)
    entry: dict[str, Any] = {
        "stamp": stamp(version, manifest, selection, inputs, measured),
        "inputs": inputs.to_json(),
        "count": count,
    }
    if output is not None:
        entry["output"] = output
    if answers:
        entry["code"], entry["answers"] = code, list(answers)
    if entries.get(key) == entry:
        return
    entries.pop(key, None)  # re-inserted last: the most recently remembered
    entries[key] = entry
    # Keep the file small: the most recent entries only.
    text = _encode(dict(list(entries.items())[-KEPT:]))
    if text is None:
        return
    _write_atomic(os.path.join(state_dir, CACHE), text)
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(state_dir, "cache", "noop.json"))  # an older version's cache


def _write_atomic(path: str, text: str) -> None:
    """Best effort: readers see the old file or the new one, whole (derived data: no fsync)."""
    from reconciler.tempfiles import replace_file

    try:
        replace_file(path, text.encode("utf-8"), ".noop.")
    except OSError:
        return
