"""Speculative uv previews: a repeated pending ``plan``/``apply`` starts its dry runs at
process start, while the planner is still being imported.

After a plain call (:func:`reconciler.entry._plain_call`) whose uv previews ran, the
state dir's ``cache/previews.stamps`` records them, under the manifest's bytes and the
environments selected (``plan``, ``plan --json`` and ``apply`` share an entry), with a
stamp of what each environment held just before its preview (the listings of its
site-packages and ``conda-meta`` directories, the size and mtime of its interpreter and
``pyvenv.cfg``) and of the uv binary. When the same call misses the fast path,
:func:`begin` starts the recorded previews whose stamps still hold, before the planner
is imported. The stamp is of content, not of inodes: a Studio app start finds its
image reset to what the last start's apply previewed (before it installed), on a new
mount. The record is the state dir's: it is read only when this user owns it and its
directory and nobody else may write them, and nothing is started from it but the uv
reconciler runs, as ``pip install --dry-run`` into the recorded interpreter.

The planner stays the authority. :func:`preview` gives it a speculative process's
result only when the invocation it would run itself is the same: the command line
(with the constraints file's content in place of its temporary path), the child's
environment variables, the working directory, the uv binary (path, size, mtime,
inode), the environment's paths, and their stamp now equal to the one taken just
before that process started (the inode and mtime of each stamped directory and file:
nothing added, removed or renamed since), when nothing stamped had been modified
within the clock slack before it; and only within :data:`MAX_AGE` of its start, and
not in an apply that waited for another's environment lock (:func:`discard`). The
process is then waited for exactly as :func:`reconciler.backends.process.run` waits
(timeout, stop requests) and its output parsed by the same code. It runs in
reconciler's process group, as the planner's own preview does: a Ctrl-C reaches it.
Any other speculative process is killed and reaped, and what it could leave is
removed as the normal preview removes it (uv's empty ``.lock`` in the environment,
when no uv holds it, and the constraints file): at the first preview of its
environment that does not match, else by :func:`end`, before reconciler exits, or by
:func:`kill_all` at a SIGTERM.

A manifest just edited has no entry of its own: once it is loaded (before the planner
is imported and the environments read), :func:`begin_edited` starts, for each of its
environments, the dry run recorded last for that interpreter under another entry, with
the edited manifest's requirements in place of the recorded ones, under the same
checks; the planner takes it only where its own invocation is that one.

Only uv's ``preview`` is ever speculated (never an install, never pip or conda), and
nothing is when a fault injection is active. For a replay of a repeated plan
(:mod:`reconciler.entry`), which waits for what it starts and compares each answer
(:func:`replay`), the record also holds that plan's questions of what is newest
(:func:`question`: ``uv pip compile FILE --no-deps --offline``, which installs
nothing); only such a call starts them, the ones its remembered plan asked
(``begin(newest=...)``), and the planner never takes one. Imports only :mod:`os` and
:mod:`threading` (and :mod:`subprocess` when it starts something): no json, typing or
hashlib on the way in.
"""

from __future__ import annotations

import os
import threading
import time
from stat import S_ISDIR

from reconciler.backends import outside
from reconciler.backends.child_env import child_environment, uv_in_venv

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from reconciler.backends.process import Completed

__all__ = [
    "RECORD", "answer", "answers", "begin", "discard", "end", "kill_all", "preview",
    "question", "remove_idle_lock", "replay", "started",
]  # fmt: skip

#: NUL-separated fields (as the fast path's ``noop.stamps``), beside it.
RECORD = os.path.join("cache", "previews.stamps")
_MAGIC = "reconciler preview record"
FORMAT = 3  # 2: the stamps are of what the environment holds; 3: the excluded requirements
#: Entries kept: the previews of a few manifests and selections.
KEPT = 16
#: A speculative result older than this when the planner asks is not taken: an apply
#: that waited for another one's environment lock, whatever ran meanwhile (an index
#: that published a release, a cache refreshed), runs its own preview under the lock.
MAX_AGE = 5.0
#: A change stamped this close before a launch may share its coarse mtime with a later
#: one: such an environment launches nothing (as the fast path's clock slack).
CLOCK_SLACK_NS = 50_000_000


class _Invocation:
    """One uv preview as the record keeps it: the command line with the constraints
    file's argument blank (at ``at``, -1 without one) and its content beside it; and
    ``excluded``, the requirements its manifest declared for the environment that it
    leaves out (refused, or held whole by the pins: ``pip_side``), which an edited
    manifest's dry run leaves out too (:func:`begin_edited`)."""

    __slots__ = ("additions", "argv", "at", "constraints", "excluded", "paths", "python")

    def __init__(
        self,
        python: str,
        argv: Sequence[str],
        at: int,
        constraints: str,
        additions: Mapping[str, str],
        paths: Sequence[str],
    ) -> None:
        self.python = python
        self.argv = list(argv)
        self.at = at
        self.constraints = constraints
        self.additions = dict(additions)
        self.paths = list(paths)  # what the environment's stamp covers
        self.excluded: list[str] = []

    def same(self, other: _Invocation) -> bool:
        """The same command, constraints content and environment additions."""
        return (self.python, self.argv, self.at, self.constraints, self.additions) == (
            other.python,
            other.argv,
            other.at,
            other.constraints,
            other.additions,
        )


class _Launched:
    """A speculative process and what it was started from."""

    __slots__ = (
        "args", "changed", "cwd", "env", "invocation", "lock", "lock_existed", "proc",
        "reaped", "stamp", "started", "tmp", "uv",
    )  # fmt: skip

    def __init__(self, invocation: _Invocation, stamp: str, changed: str, uv: str) -> None:
        self.invocation = invocation
        self.stamp = stamp  # what the environment held (the record's stamp)
        self.changed = changed  # when its directories last changed, at the launch
        self.uv = uv  # the uv binary at the launch (size, inode, mtime)
        self.cwd = os.getcwd()
        self.env = child_environment(invocation.additions)
        self.lock = os.path.join(os.path.dirname(os.path.dirname(invocation.python)), ".lock")
        self.lock_existed = os.path.exists(self.lock)
        self.tmp: str | None = None
        self.args: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.reaped = False  # waited for, its pipes read and closed
        self.started = 0.0


_lock = threading.Lock()
_launched: list[_Launched] = []
#: (state dir, key) while a plain call records its previews; None otherwise.
_recording: list[tuple[str, str]] = []
_noted: list[tuple[_Invocation, str, str]] = []
_wasted: list[bool] = []  # a speculative process was killed because it did not match
_taken: list[_Launched] = []  # taken by the planner, being waited for
#: The answer of each preview this call ran (:func:`answer`); None: not replayable.
_answers: list[str | None] = []
#: The record's entries as :func:`begin` read them.
_read: list[dict[str, list[tuple[_Invocation, str, str]]]] = []
#: Interpreter -> the requirements the manifest declares for its environment, in its
#: order (:func:`begin_edited`): what a noted dry run leaves out of them is recorded.
_declared: dict[str, list[str]] = {}


def _binary(path: str, *, inode: bool = True) -> str:
    """``size:inode:mtime`` of a binary (``size:mtime`` without ``inode``)."""
    try:
        st = os.stat(path)
    except OSError:
        return "<missing>"
    return (
        f"{st.st_size}:{st.st_ino}:{st.st_mtime_ns}" if inode else f"{st.st_size}:{st.st_mtime_ns}"
    )


def _changed(paths: Sequence[str]) -> str:
    """``inode:mtime`` of each of ``paths``: any entry added to, removed from or renamed in
    a directory changes it (within one process: a new mount may give new inodes)."""
    return _stamps(paths, held=False)[1]


def _stamps(paths: Sequence[str], *, held: bool = True) -> tuple[str, str, int]:
    """What ``paths`` hold (a digest of each directory's listing, ``size:mtime`` of each
    file; "" without ``held``), :func:`_changed`, and the newest mtime among them.

    The first is what the record keeps: an image reset to the same content on a new
    host or mount (a Studio app start) holds the same names and files, with other
    inodes and directory mtimes.
    """
    from reconciler.digest import sha256

    holds: list[str] = []
    changed: list[str] = []
    newest = 0
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            holds.append("<missing>")
            changed.append("<missing>")
            continue
        changed.append(f"{st.st_ino}:{st.st_mtime_ns}")
        newest = max(newest, st.st_mtime_ns)
        if not held:
            continue
        if not S_ISDIR(st.st_mode):
            holds.append(f"{st.st_size}:{st.st_mtime_ns}")
            continue
        try:
            names = sorted(os.listdir(path))
        except OSError:
            holds.append("<unreadable>")
            continue
        holds.append(sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest())
    return ("\0".join(holds) if held else ""), "\0".join(changed), newest


def environment_paths(python: Path) -> list[str]:
    """What an environment's stamp covers: its interpreter, ``pyvenv.cfg``,
    ``conda-meta`` and site-packages directories (a package installed, removed or
    replaced, or the environment recreated, changes one)."""
    from reconciler.state.environment import system_site_dirs
    from reconciler.state.python import find_site_packages

    prefix = python.parent.parent
    site, version = find_site_packages(prefix)
    sites = [str(s) for s in (site, *system_site_dirs(prefix, version)) if s]
    return [str(python), str(prefix / "pyvenv.cfg"), str(prefix / "conda-meta"), *sites]


# -- the record --


def _encode(entries: dict[str, list[tuple[_Invocation, str, str]]]) -> str | None:
    fields = [_MAGIC, str(FORMAT), str(len(entries))]
    for key, previews in entries.items():
        fields += [key, str(len(previews))]
        for inv, stamp, uv in previews:
            fields += [uv, stamp.replace("\0", "\1"), inv.python, str(inv.at), inv.constraints]
            fields += [str(len(inv.argv)), *inv.argv]
            fields += [str(len(inv.additions)), *(f"{k}={v}" for k, v in inv.additions.items())]
            fields += [str(len(inv.paths)), *inv.paths]
            fields += [str(len(inv.excluded)), *inv.excluded]
    if any("\0" in f for f in fields):
        return None
    return "\0".join(fields)


def _decode(text: str) -> dict[str, list[tuple[_Invocation, str, str]]]:
    """The entries :func:`_encode` wrote; empty for anything else (a miss, not a guess)."""
    fields = text.split("\0")
    if fields[:2] != [_MAGIC, str(FORMAT)] or len(fields) < 3:
        return {}
    entries: dict[str, list[tuple[_Invocation, str, str]]] = {}
    at = 3

    def block() -> list[str]:
        nonlocal at
        n = int(fields[at])
        items = fields[at + 1 : at + 1 + n]
        if n < 0 or len(items) != n:
            raise ValueError("short")
        at += 1 + n
        return items

    try:
        for _ in range(int(fields[2])):
            key, count = fields[at], int(fields[at + 1])
            at += 2
            previews = []
            for _ in range(count):
                uv, stamp, python, where, constraints = fields[at : at + 5]
                at += 5
                argv = block()
                additions = dict(a.split("=", 1) for a in block())
                paths = block()
                excluded = block()
                at_ = int(where)
                if not -1 <= at_ < len(argv) or (at_ >= 0 and argv[at_] != ""):
                    raise ValueError("no such argument")  # not what _encode wrote
                inv = _Invocation(python, argv, at_, constraints, additions, paths)
                inv.excluded = excluded
                previews.append((inv, stamp.replace("\1", "\0"), uv))
            entries[key] = previews
    except (ValueError, IndexError):
        return {}
    return entries if at == len(fields) else {}


def _load(state_dir: str) -> dict[str, list[tuple[_Invocation, str, str]]]:
    text = _read_text(state_dir)
    return {} if text is None else _decode(text)


def _read_text(state_dir: str) -> str | None:
    """The record's text, when this user owns it and its directory and nobody else may
    write either: what it names (uv, and the interpreter uv runs) is started."""
    path = os.path.join(state_dir, RECORD)
    try:
        with open(path, encoding="utf-8") as f:
            from reconciler.tempfiles import private  # (no import when there is no record)

            return f.read() if private(f.fileno(), path) else None
    except (OSError, ValueError):
        return None


# -- launching --


def _temp_file(text: str) -> str:
    """A new private file holding ``text``, where the normal preview's constraints file
    goes (:func:`reconciler.backends.pip_args.temp_text_file`)."""
    from reconciler.tempfiles import CONSTRAINTS, new_file

    return new_file(CONSTRAINTS, ".txt", text.encode("utf-8"))


def _start(inv: _Invocation, stamp: str, changed: str, uv: str) -> None:
    import subprocess

    one = _Launched(inv, stamp, changed, uv)
    args = list(inv.argv)
    if inv.at >= 0:
        one.tmp = _temp_file(inv.constraints)
        args[inv.at] = one.tmp
    one.args = args
    try:
        # In reconciler's process group, as the planner's own preview: a Ctrl-C or a
        # signal to the group (``timeout``, a notebook's interrupt) reaches it too.
        one.proc = subprocess.Popen(
            args,
            env=one.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except BaseException:
        _clean(one)
        raise
    one.started = time.monotonic()
    _launched.append(one)


def begin(state_dir: str, key: str, *, newest: Sequence[str] = ()) -> None:
    """Record this call's previews under ``key``; start the ones recorded last time
    whose environment and uv binary are as they were then (best effort). With
    ``newest`` (the answers of the remembered plan a replay will compare), the recorded
    questions of what is newest that plan asked too: whether a plan asks one beside a
    dry run depends on whether that dry run still runs when the planner takes it."""
    _recording[:] = [(state_dir, key)]
    _read.clear()
    _declared.clear()
    with _lock:
        _answers.clear()
    outside.clear()  # what this call consults, from here on
    if os.environ.get("RECONCILER_FAULT_POINT"):
        return  # a fault test watches every process this run starts
    expected = uv_in_venv()
    if expected is None:
        return  # the uv the planner would run is found by uv's own search: not here
    launch = _Launcher(expected)  # its clock read before the record is loaded
    entries = _load(state_dir)
    _read[:] = [entries]
    for inv, stamp, uv in entries.get(key, []):
        if _a_preview(inv, expected) or (_a_question(inv, expected) and _asked(inv, newest)):
            launch(inv, stamp, uv)


class _Launcher:
    """Starts a recorded invocation when the uv binary and what its environment holds are
    as they were when it was recorded, and nothing stamped changed within the clock
    slack before now (each environment stamped once)."""

    def __init__(self, uv: str) -> None:
        self._uv = uv
        self._now = time.time_ns()
        self._binary = _binary(uv, inode=False)
        self._stamped: dict[tuple[str, ...], tuple[str, str, int]] = {}

    def __call__(self, inv: _Invocation, stamp: str, uv: str) -> None:
        if uv != self._binary:
            return
        paths = tuple(inv.paths)
        if paths not in self._stamped:
            self._stamped[paths] = _stamps(inv.paths)
        held, changed, latest = self._stamped[paths]
        if held != stamp or latest >= self._now - CLOCK_SLACK_NS:
            return
        try:
            _start(inv, stamp, changed, _binary(self._uv))
        except (OSError, ValueError):
            return


def begin_edited(edited: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> None:
    """For a call whose manifest's bytes have no entry (a manifest just edited): start,
    for each interpreter of ``edited`` (interpreter -> the repository options of its
    environment's pip settings, and the requirements it declares in the manifest's
    order) that :func:`begin` started nothing for, the dry run recorded last for it
    under any entry (a pinned one before the unpinned one that explains a refusal),
    with those requirements in place of the recorded ones, when its
    options are exactly those repository options and the constraints file (no other
    repository is asked of the edited manifest's names), and its environment and uv
    binary are as they were then. The rest of the dry run (its constraints: the
    environment's pins) is what the planner runs again while the environment holds
    what it held; where it is not (a request refused, a lock file), the planner takes
    nothing and kills it, as any speculative process that does not match. The
    requirements a recorded dry run left out of its manifest's (refused, or held whole
    by the pins) are left out of its edited one too, while the edited manifest still
    declares them. ``edited`` is kept: the dry runs this call notes record what they
    leave out of it."""
    _declared.clear()
    _declared.update((python, list(texts)) for python, (_, texts) in edited.items())
    expected = uv_in_venv()
    if not _read or expected is None:
        return  # begin read no record (a fault injection, the uv the planner runs unknown)
    key = _recording[0][1]
    entries = _read[0]
    if key in entries:
        return  # begin started what this call recorded
    with _lock:
        running = {one.invocation.python for one in _launched}
    last: dict[str, tuple[_Invocation, str, str]] = {}  # interpreter -> its last dry run
    for previews in entries.values():  # the last recorded last
        for inv, stamp, uv in previews:
            if inv.python not in edited or inv.python in running:
                continue
            if _is_question(inv) or not _a_preview(inv, expected):
                continue
            cut = inv.argv.index("--", 9) + 1  # the requirements follow it (_a_preview)
            pins = ["--constraints", ""] if inv.at >= 0 else []
            repository, declared = edited[inv.python]
            left_out = set(inv.excluded)
            requirements = [text for text in declared if text not in left_out]
            if inv.argv[9 : cut - 1] == [*repository, *pins]:
                known = last.get(inv.python)
                if not pins and known is not None and known[0].at >= 0:
                    # An unpinned dry run after a pinned one is a refusal's explanation
                    # (pip_side._explain_refusal), which the planner runs only after
                    # its own pinned one: the pinned one stays the one to start.
                    continue
                argv = [*inv.argv[:cut], *requirements]
                edit = _Invocation(
                    inv.python, argv, inv.at, inv.constraints, inv.additions, inv.paths
                )
                last[inv.python] = (edit, stamp, uv)
    launch = _Launcher(expected)
    for edit, stamp, uv in last.values():
        launch(edit, stamp, uv)


def started() -> bool:
    """Whether :func:`begin` started a preview that is not yet taken."""
    with _lock:
        return bool(_launched)


def _is_question(inv: _Invocation) -> bool:
    """A question of what is newest (``uv pip compile``), not a dry run."""
    return inv.argv[2:3] == ["compile"]


#: The variables :func:`reconciler.backends.pip_args.isolation_env` adds, each a number
#: or a flag, and ``PIP_CONFIG_FILE`` (the null device): a recorded invocation with any
#: other addition is never started.
ADDITIONS = frozenset(
    {
        "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_INPUT", "UV_NO_PROGRESS", "UV_HTTP_TIMEOUT",
        "UV_HTTP_CONNECT_TIMEOUT", "UV_HTTP_RETRIES", "PIP_RETRIES", "PIP_DEFAULT_TIMEOUT",
    }
)  # fmt: skip
#: Repository options (:func:`reconciler.backends.pip_args.repository_args`), with the
#: number of values each takes.
_REPOSITORY = {
    "--no-index": 0, "--index-url": 1, "--index": 1, "--default-index": 1,
    "--find-links": 1, "--index-strategy": 1,
}  # fmt: skip


def _options(argv: Sequence[str], allowed: Mapping[str, int]) -> int:
    """How many of ``argv``'s first arguments are ``allowed`` options with their values
    (a value never looks like an option)."""
    at = 0
    while at < len(argv) and argv[at] in allowed:
        values = argv[at + 1 : at + 1 + allowed[argv[at]]]
        if len(values) != allowed[argv[at]] or any(v.startswith("-") for v in values):
            return at
        at += 1 + len(values)
    return at


def _additions_allowed(inv: _Invocation) -> bool:
    return all(
        v == os.devnull if k == "PIP_CONFIG_FILE" else k in ADDITIONS and _number(v)
        for k, v in inv.additions.items()
    )


def _number(text: str) -> bool:
    return text.replace(".", "", 1).isdigit()


def _a_preview(inv: _Invocation, uv: str) -> bool:
    """Whether a recorded invocation is what :func:`preview` records and nothing else:
    the uv the planner runs, ``pip install --dry-run --no-build`` into the recorded
    interpreter with the options :meth:`reconciler.backends.pip.UvCli.preview` gives
    (repository, reinstall and refresh options, the constraints file, then ``--`` and
    the requirements), the variables ``isolation_env`` adds, and the environment's own
    paths to stamp. The record is the state dir's; nothing in it is started unless it
    has this shape."""
    argv = inv.argv
    head = [uv, "pip", "install", "--dry-run", "--no-build", "--python", inv.python]
    if argv[:9] != [*head, "--output-format", "json"] or not _additions_allowed(inv):
        return False
    allowed = {**_REPOSITORY, "--reinstall-package": 1, "--refresh": 0, "--refresh-package": 1}
    at = 9 + _options(argv[9:], allowed)
    if argv[at : at + 2] == ["--constraints", ""] and inv.at == at + 1:
        at += 2
    elif inv.at != -1:
        return False
    return argv[at : at + 1] == ["--"] and bool(inv.paths) and inv.paths[0] == inv.python


def _a_question(inv: _Invocation, uv: str) -> bool:
    """Whether a recorded invocation is exactly what :func:`question` records: the uv the
    planner runs, ``pip compile FILE --python <the recorded interpreter> --no-deps
    --no-header --no-annotate --quiet --no-build --offline`` and repository options
    (it installs and builds nothing, and writes no file), the file's content kept in the
    record, the variables ``isolation_env`` adds."""
    argv = inv.argv
    head = [uv, "pip", "compile", "", "--python", inv.python, "--no-deps", "--no-header"]
    head += ["--no-annotate", "--quiet", "--no-build", "--offline"]
    return (
        argv[: len(head)] == head
        and inv.at == 3
        and len(head) + _options(argv[len(head) :], _REPOSITORY) == len(argv)
        and _additions_allowed(inv)
        and bool(inv.paths)
        and inv.paths[0] == inv.python
    )


# -- claiming --


def _kill(one: _Launched) -> None:
    """Kill ``one``, reap it, remove what it left. (The interpreter uv may be running
    to read the environment is not killed: it exits when its short query ends.)"""
    proc = one.proc
    if proc is not None and not one.reaped:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.communicate()
        except (OSError, ValueError):  # its pipes were closed by an interrupted wait
            proc.wait()
        one.reaped = True
    _clean(one)


def _clean(one: _Launched) -> None:
    """What the normal preview removes after uv: the constraints file, and the ``.lock``
    uv makes in an environment that had none."""
    if one.tmp is not None:
        _unlink(one.tmp)
        one.tmp = None
    if not one.lock_existed:
        remove_idle_lock(one.lock)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return


def remove_idle_lock(path: str) -> None:
    """Remove uv's ``.lock`` at ``path`` unless a uv holds it now (another install or
    preview of the environment, which would lose its exclusion): the file is removed
    while this process holds its lock, and only if ``path`` still names it."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        named, opened = os.stat(path), os.fstat(fd)
        if (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino):
            os.unlink(path)
    except OSError:
        return  # held by a uv (or gone): left as it is
    finally:
        os.close(fd)


def _holds(one: _Launched, wanted: _Invocation) -> bool:
    """``one`` runs exactly ``wanted``, in an environment and with a uv binary that have
    not changed since it started, with the same variables and working directory."""
    return (
        one.invocation.same(wanted)
        and time.monotonic() - one.started <= MAX_AGE
        and one.invocation.paths == wanted.paths
        and _unchanged(one)
    )


def _unchanged(one: _Launched) -> bool:
    """The variables and working directory ``one`` was started with are this process's
    now, and its uv binary and environment have not changed since it started."""
    return (
        one.env == child_environment(one.invocation.additions)
        and one.cwd == os.getcwd()
        and _binary(one.args[0]) == one.uv
        and _changed(one.invocation.paths) == one.changed
    )


def _take(wanted: _Invocation) -> _Launched | None:
    """The speculative process started with exactly ``wanted`` (see :func:`_holds`).
    When there is none, every other one for the same interpreter is killed: its
    environment or inputs changed, and it holds uv's lock on that environment."""
    with _lock:
        mine = [
            one
            for one in _launched
            if one.invocation.python == wanted.python and not _is_question(one.invocation)
        ]
        taken = next((one for one in mine if _holds(one, wanted)), None)
        for one in [taken] if taken is not None else mine:
            _launched.remove(one)
    if taken is None:
        for one in mine:
            _kill(one)
        if mine:
            _wasted.append(True)
    return taken


def preview(
    python: Path,
    argv: Sequence[str | Path],
    constraints: Sequence[str],
    requirements: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    run: Callable[[], Completed],
) -> Completed:
    """A uv preview's process result: the speculative one when it was started with this
    exact invocation, else ``run()``; uv's ``.lock`` is removed after either when the
    environment had none before. While a plain call records, the invocation is noted
    for the next run."""
    from pathlib import Path

    from reconciler.backends.pip_args import constraints_text, pinned_argv

    mark = "\0"  # no argument holds a NUL
    cfile = Path(mark) if constraints else None
    template = [str(a) for a in pinned_argv(argv, "--constraints", cfile, requirements)]
    at = template.index(mark) if constraints else -1
    if at >= 0:
        template[at] = ""
    wanted = _Invocation(str(python), template, at, constraints_text(constraints), env, [])
    one = None
    if _launched:
        wanted.paths = environment_paths(python)  # what a taken one's stamp must cover
        one = _take(wanted)
    if one is not None and one.proc is not None:
        from reconciler.backends.process import finish, notify_started

        with _lock:
            _taken.append(one)  # (before what overlaps it: an interrupt there kills it too)
        try:
            # What overlaps the preview's process starts now, as for run(); told whether
            # the process has ended (then there is nothing left to overlap).
            notify_started(one.proc.poll() is not None)
            left = timeout - (time.monotonic() - one.started)
            result = finish(one.proc, one.args, max(left, 0.0))
            one.reaped = True
        finally:
            with _lock:
                if one in _taken:
                    _taken.remove(one)
            _kill(one)  # (reaped by now unless interrupted) the constraints file, uv's .lock
        _answered(wanted, result, _note(wanted, python, one.stamp))
        return result
    if not _recording:
        return _no_lock_left(python, run)
    return _recorded(wanted, python, lambda: _no_lock_left(python, run))


def question(
    python: Path,
    argv: Sequence[str | Path],
    text: str,
    env: Mapping[str, str],
    run: Callable[[], Completed],
    *,
    local: bool,
) -> Completed:
    """What is newest (``uv pip compile - ... --no-deps --offline``, ``-`` the file that
    holds ``text``): ``run()``. While a plain call records, its invocation is noted for
    the record and its answer kept, as a preview's, and its process goes unnoted by
    :mod:`reconciler.backends.outside`: a replay asks it again and compares. It is never
    taken from a speculative process. ``local``: every location is on this machine;
    otherwise (an index) its ``--offline`` answer is what the dry run left in uv's
    cache, which a replay that asks both at once would not see: the process is noted
    as any other (the plan is not replayed)."""
    if not _recording or not local:
        return run()
    template = [str(a) for a in argv]
    at = template.index("-")
    template[at] = ""
    return _recorded(_Invocation(str(python), template, at, text, env, []), python, run)


def _recorded(wanted: _Invocation, python: Path, run: Callable[[], Completed]) -> Completed:
    """``run()`` of ``wanted`` while a plain call records (:func:`preview` or
    :func:`question` ran it itself): its process unnoted by
    :mod:`reconciler.backends.outside`, since a replay compares its output; noted for
    the record when the environment did not change while uv read it; its answer kept."""
    paths = wanted.paths or environment_paths(python)
    held, changed, _ = _stamps(paths)
    previous = outside.deferred(True)
    try:
        result = run()
    finally:
        outside.deferred(previous)
    noted = False
    if _changed(paths) == changed:  # the environment did not change while uv read it
        wanted.paths = paths
        noted = _note(wanted, python, held)
    _answered(wanted, result, noted)
    return result


def _no_lock_left(python: Path, run: Callable[[], Completed]) -> Completed:
    """``run()``, then the ``.lock`` removed if it was not there before: uv takes a file
    lock on the environment even for a dry run, creating an empty ``.lock`` in it; a
    preview must leave the environment as it found it."""
    lock = python.parent.parent / ".lock"
    existed = lock.exists()
    try:
        return run()
    finally:
        if not existed:
            remove_idle_lock(str(lock))


def _note(wanted: _Invocation, python: Path, stamp: str) -> bool:
    """Note ``wanted`` for the record; whether it was (not with credentials)."""
    from reconciler.backends.process import redact

    if not _recording:
        return False
    if any(redact(a) != a for a in wanted.argv):
        return False  # credentials in an index URL are never written to the state dir
    if not wanted.paths:
        wanted.paths = environment_paths(python)
    declared = _declared.get(wanted.python)
    if declared and not _is_question(wanted) and "--" in wanted.argv[9:]:
        asked = set(wanted.argv[wanted.argv.index("--", 9) + 1 :])  # (as begin_edited cuts)
        wanted.excluded = [text for text in declared if text not in asked]
    uv = _binary(wanted.argv[0], inode=False)
    with _lock:
        _noted.append((wanted, stamp, uv))
    return True


def answer(inv: _Invocation, returncode: int, stdout: str, stderr: str) -> str:
    """The digest of an invocation and what it printed, as a replay compares it: its
    standard output (uv's JSON), and its standard error when it failed (why the
    resolution has no solution; a success's holds timings)."""
    from reconciler.digest import sha256

    said = [stdout] if returncode == 0 else [stdout, stderr]
    fields = [inv.python, str(inv.at), inv.constraints, str(returncode), *said, *inv.argv]
    fields += sorted(f"{k}={v}" for k, v in inv.additions.items())
    text = "\0".join(fields).encode("utf-8", "surrogateescape")
    digest = f"{sha256(text).hexdigest()}:{inv.python}"
    return f"{_NEWEST}{digest}" if _is_question(inv) else digest


#: What starts the answer of a question of what is newest (:func:`answer`; a dry run's
#: starts with its digest): a replay starts only the questions the remembered plan
#: asked (:func:`begin`).
_NEWEST = "newest:"


def _asked(inv: _Invocation, newest: Sequence[str]) -> bool:
    """Whether ``newest`` (a remembered plan's answers) holds the answer of a question
    of what is newest asked of ``inv``'s interpreter."""
    head = len(_NEWEST) + 65  # the marker, the digest and its colon
    return any(a.startswith(_NEWEST) and a[head:] == inv.python for a in newest)


def _answered(wanted: _Invocation, result: Completed, noted: bool) -> None:
    """Keep the answer of a preview this call ran: one the record holds can be asked
    again by a replay; any other makes the call unreplayable."""
    key = answer(wanted, result.returncode, result.stdout, result.stderr) if noted else None
    with _lock:
        _answers.append(key)


def answers() -> list[str] | None:
    """The answers of the previews this call ran (:func:`answer`), when a replay can
    ask each of them again: each is in the record. None otherwise."""
    with _lock:
        got = list(_answers)
    if any(a is None for a in got):
        return None
    return [a for a in got if a is not None]


def replay(expected: Sequence[str], timeout: float) -> bool:
    """Wait for the previews :func:`begin` started and tell whether they answered
    exactly ``expected``: the same invocations, each with the same outcome, in
    an environment and with a uv binary unchanged while it ran. Each is then reaped and
    what it left removed; nothing is left for the planner to take (a miss plans in
    full, with its own previews). When they are not as many as ``expected`` (another
    call of the same manifest recorded its own), none is waited for: the dry runs are
    left for the planner to take, the questions killed. ``timeout`` bounds the wait
    for each."""
    import subprocess

    if os.environ.get("RECONCILER_FAULT_POINT"):
        return False
    with _lock:
        mine = list(_launched)
        if len(mine) != len(expected):  # the record says other: the planner takes them
            mine = []
        _launched[:] = [one for one in _launched if one not in mine]
        _taken.extend(mine)  # killed by kill_all at a SIGTERM while waited for
    if not mine:
        discard(questions_only=True)
        return False
    got: list[str] = []
    same = bool(mine)
    try:
        for one in mine:
            if one.proc is None:
                same = False
                break
            try:
                out, err = one.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                same = False
                break
            one.reaped = True
            if not _unchanged(one):
                same = False
                break
            got.append(answer(one.invocation, one.proc.returncode, out, err))
    finally:
        with _lock:  # back where end() kills and cleans them, should this be interrupted
            for one in mine:
                if one in _taken:
                    _taken.remove(one)
            _launched.extend(mine)
        for one in mine:
            _kill(one)  # reaped by now unless stopped: the constraints file, uv's .lock
            with _lock:
                _launched.remove(one)
    return same and sorted(got) == sorted(expected)


def kill_all() -> None:
    """Kill every speculative process, taken or not, and remove what each left (SIGTERM:
    the process is about to exit, its planner threads with it)."""
    with _lock:
        every = [*_launched, *_taken]
        _launched.clear()
        _taken.clear()
    for one in every:
        try:
            proc = one.proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                # Until it is gone: a dying uv still holds its flock on the .lock.
                proc.wait(timeout=1.0)
            _clean(one)
        except Exception:  # the exit goes on
            continue


def discard(*, questions_only: bool = False) -> None:
    """Kill and reap every speculative process not yet taken (an apply that waited for
    another's environment lock previews again under it; :func:`end`). The record is
    kept. ``questions_only``: the questions of what is newest only (no replay waits for
    them, and the planner never takes one; the dry runs are left for it)."""
    with _lock:
        left = [one for one in _launched if not questions_only or _is_question(one.invocation)]
        _launched[:] = [one for one in _launched if one not in left]
    for one in left:
        try:
            _kill(one)
        except Exception:  # reaped or not, the run goes on with its own previews
            continue


def end(record: bool = True, *, finished: bool = True, questions: bool = False) -> None:
    """Kill and reap every speculative process not claimed (removing what it left), and
    record the previews this call ran, if any (best effort: derived data); with
    ``questions`` (a plan a replay may ask them of again), its questions of what is
    newest too. An entry
    whose previews were started and none taken, with nothing run in their place (a
    plan from a lock file), is dropped: it would start them again at every run.
    ``record`` False (the manifest loaded was not the one keyed): nothing is written;
    ``finished`` False (the run failed or was stopped before its previews): an entry
    is not dropped for what it did not get to."""
    with _lock:
        noted = [n for n in _noted if questions or not _is_question(n[0])]
        _noted.clear()
        recording = list(_recording)
        _recording.clear()
        _read.clear()
        _declared.clear()
        wasted = finished and (bool(_launched) or bool(_wasted))
        _wasted.clear()
        _answers.clear()
    discard()
    # Kept even when the environment changed since (an apply installed): an app start
    # that finds the image reset to what it held then launches it again.
    if not recording or not record or not (noted or wasted):
        return
    state_dir, key = recording[0]
    before = _read_text(state_dir)
    entries = {} if before is None else _decode(before)
    if noted:
        # Kept for the replay they were recorded for: an apply or another rendering of
        # the same manifest records its previews only, and a plan whose dry run had
        # ended when the planner took it asks no question beside it.
        again = [n[0] for n in noted]
        noted += [
            q
            for q in entries.get(key, [])
            if _is_question(q[0]) and not any(q[0].same(inv) for inv in again)
        ]
    if key not in entries and not noted:
        return
    entries.pop(key, None)  # re-inserted last: the most recently recorded
    if noted:
        entries[key] = noted
    text = _encode(dict(list(entries.items())[-KEPT:]))
    if text is not None and text != before:  # a repeated run: the record says the same
        from reconciler.tempfiles import replace_file

        try:
            replace_file(os.path.join(state_dir, RECORD), text.encode("utf-8"), ".previews.")
        except OSError:
            return
