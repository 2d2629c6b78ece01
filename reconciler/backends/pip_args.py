"""What every pip and uv call is given, whichever installer runs.

The isolated environment with its network bounds, the repository options (in an
order that a public index cannot subvert), the constraints file that pins
every managed and foreign distribution to its installed version, and where the uv
binary is.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from reconciler.backends.child_env import uv_in_venv as uv_in_venv  # where it was first
from reconciler.errors import BackendError
from reconciler.manifest.model import PipSettings
from reconciler.names import canonical_name

__all__ = [
    "HTTP_CONNECT_TIMEOUT",
    "HTTP_READ_TIMEOUT",
    "HTTP_RETRIES",
    "SYSCONFIG_LOCK",
    "check_index_order",
    "constraints_file",
    "constraints_text",
    "isolation_env",
    "pinned_argv",
    "pins_for",
    "repository_args",
    "requirement_name",
    "temp_text_file",
    "uv_in_venv",
]

#: How long uv and pip wait on the network, unless the environment already says
#: (``UV_HTTP_TIMEOUT``, ``UV_HTTP_CONNECT_TIMEOUT``, ``UV_HTTP_RETRIES``; pip's
#: ``PIP_TIMEOUT``/``PIP_DEFAULT_TIMEOUT``, ``PIP_RETRIES``). The read timeout is
#: per read (a slow but moving download never hits it); a failed request (5xx,
#: reset, timeout) is retried ``HTTP_RETRIES`` times with backoff, so one stalled
#: request gives up after about ``(HTTP_RETRIES + 1) * HTTP_READ_TIMEOUT`` seconds
#: plus a few seconds of backoff, well inside ``PREVIEW_TIMEOUT``/``INSTALL_TIMEOUT``
#: (:mod:`reconciler.backends.pip`), which bound the whole process.
HTTP_READ_TIMEOUT = 30
HTTP_CONNECT_TIMEOUT = 10
HTTP_RETRIES = 2


def isolation_env() -> dict[str, str]:
    """Environment additions for every pip/uv call. Nothing from a shell profile leaks in.

    The network bounds (:data:`HTTP_READ_TIMEOUT`, :data:`HTTP_CONNECT_TIMEOUT`,
    :data:`HTTP_RETRIES`) apply unless the caller's environment sets its own.
    """
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "UV_NO_PROGRESS": "1"}
    bounds = {
        "UV_HTTP_TIMEOUT": str(HTTP_READ_TIMEOUT),
        "UV_HTTP_CONNECT_TIMEOUT": str(HTTP_CONNECT_TIMEOUT),
        "UV_HTTP_RETRIES": str(HTTP_RETRIES),
        "PIP_RETRIES": str(HTTP_RETRIES),
    }
    for key, value in bounds.items():
        if not os.environ.get(key):
            env[key] = value
    if not (os.environ.get("PIP_TIMEOUT") or os.environ.get("PIP_DEFAULT_TIMEOUT")):
        env["PIP_DEFAULT_TIMEOUT"] = str(HTTP_READ_TIMEOUT)
    # pip reads no configuration file (the machine's pip.conf, PIP_CONFIG_FILE): the
    # manifest names the repositories, as for uv, which never reads pip.conf.
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def constraints_text(constraints: Sequence[str]) -> str:
    """What the constraints file holds: one constraint a line."""
    return "".join(f"{c}\n" for c in constraints)


def pins_for(constraints: Sequence[str], requirements: Sequence[str]) -> list[str]:
    """The ``constraints`` on the distributions ``requirements`` name (``name==version``,
    ``name==version --hash=...`` lines): all that an install without dependencies
    (``--no-deps``) can use. It installs only what it is given and replaces only their
    installed versions, so a pin of any other distribution holds unsaid; one of a
    distribution it is given still fails the install before anything changes, should a
    managed or foreign one come to be among them. uv reads each line of a constraints
    file whatever it names: the image's 620 pins cost its install 3 of 27 ms."""
    names = {requirement_name(r) for r in requirements}
    return [c for c in constraints if requirement_name(c) in names]


def requirement_name(spec: str) -> str:
    """The canonical name a requirement (``name==version``, ``name>=1 ...``) starts with;
    "" when it starts with none."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec)
    return canonical_name(match.group(0)) if match else ""


def pinned_argv(
    argv: Sequence[str | Path], flag: str, cfile: Path | None, requirements: Sequence[str]
) -> list[str | Path]:
    """An installer's command line: ``argv``, then ``flag cfile`` (uv's ``--constraints``,
    pip's ``--constraint``) when there is a constraints file, then ``--`` and the
    requirements."""
    pins: list[str | Path] = [flag, cfile] if cfile is not None else []
    return [*argv, *pins, "--", *requirements]


@contextmanager
def constraints_file(constraints: Sequence[str]) -> Iterator[Path | None]:
    """A temporary file with one constraint a line (None when there are none), removed after."""
    if not constraints:
        yield None
        return
    from reconciler.tempfiles import CONSTRAINTS

    with temp_text_file(CONSTRAINTS, constraints_text(constraints)) as path:
        yield path


@contextmanager
def temp_text_file(prefix: str, text: str) -> Iterator[Path]:
    """A new ``PREFIX<pid>-<random>.txt`` in the temporary directory (only this user can
    read it: :func:`reconciler.tempfiles.new_file`) holding ``text`` in UTF-8, removed
    after."""
    from reconciler.tempfiles import new_file

    name = new_file(prefix, ".txt", text.encode("utf-8"))
    try:
        yield Path(name)
    finally:
        with suppress(FileNotFoundError):  # removed by someone else meanwhile: gone either way
            os.unlink(name)


#: Held by the first uses of sysconfig (``find_uv_bin``, the wheel tags of the running
#: interpreter): its lazy set-up is not thread-safe, and environments plan in threads.
SYSCONFIG_LOCK = threading.Lock()


def check_index_order(installer: str, settings: PipSettings) -> None:
    """Refuse ``installer: pip`` with ``extra_index_urls``: pip merges every index and
    takes the highest version wherever it is (dependency confusion: a public extra
    index can shadow an internal package). uv keeps the order (see :func:`repository_args`)."""
    if installer == "pip" and settings.extra_index_urls and not settings.no_index:
        raise BackendError(
            "refusing to install with pip from several indexes (extra_index_urls): pip "
            "merges all indexes and installs the highest version it finds on any of them, "
            "so a package on an extra index can replace the one on index_url "
            "(dependency confusion); nothing was changed",
            hint="use `installer: uv` (or auto), which takes each package from the first "
            "index that has it, or drop extra_index_urls",
        )


def repository_args(settings: PipSettings, *, uv: bool) -> list[str]:
    """Repository options for uv or pip.

    uv takes each package from the first index that has it (``--index-strategy
    first-index``, passed explicitly so a user's uv configuration cannot change it),
    in this order: ``index_url``, then ``extra_index_urls`` as listed, then (without
    ``index_url``) the default index. uv's own ``--extra-index-url`` would put the
    extra indexes before ``--index-url``, so they are passed as ``--index`` (earlier
    wins) and the last one as ``--default-index``. pip merges indexes: it gets no
    extra index (:func:`check_index_order`).
    """
    args: list[str] = []
    extras = list(settings.extra_index_urls)
    if settings.no_index:
        args.append("--no-index")
    elif uv and settings.index_url and extras:
        for url in [settings.index_url, *extras[:-1]]:
            args += ["--index", url]
        args += ["--default-index", extras[-1]]
        extras = []
    elif settings.index_url:
        args += ["--index-url", settings.index_url]
    if uv:
        for url in extras:
            args += ["--index", url]
        args += ["--index-strategy", "first-index"]
    elif extras and not settings.no_index:
        check_index_order("pip", settings)
    for link in settings.find_links:
        args += ["--find-links", link]
    return args
