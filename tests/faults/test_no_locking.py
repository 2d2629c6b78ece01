"""A file system that cannot lock: apply fails closed, at once, and changes nothing.

Some network file systems answer every lock request with ``ENOLCK``. An
``LD_PRELOAD`` shim, compiled with gcc once per session, makes ``flock()`` and
``fcntl()`` lock commands (``F_SETLK``, ``F_SETLKW``, ``F_GETLK`` and the OFD
variants) fail that way for the ``reconciler apply`` process; everything else
goes to the real libc.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultrun import (
    Managed,
    assert_clean_failure,
    env_hash,
    make_image,
    proc_env,
    run_cli,
    state_documents,
    write_manifest,
)
from tests.support.servers import StaticServer, build_simple_index

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/file.h>

int flock(int fd, int operation) {
    (void)fd; (void)operation;
    errno = ENOLCK;
    return -1;
}

static int is_lock(int cmd) {
    return cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK
        || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW || cmd == F_OFD_GETLK;
}

typedef int (*fcntl_fn)(int, int, ...);

static int forward(const char *symbol, int fd, int cmd, void *arg) {
    fcntl_fn real = (fcntl_fn)dlsym(RTLD_NEXT, symbol);
    if (real == 0) { errno = ENOSYS; return -1; }
    return real(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...) {
    va_list ap; va_start(ap, cmd); void *arg = va_arg(ap, void *); va_end(ap);
    if (is_lock(cmd)) { errno = ENOLCK; return -1; }
    return forward("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
    va_list ap; va_start(ap, cmd); void *arg = va_arg(ap, void *); va_end(ap);
    if (is_lock(cmd)) { errno = ENOLCK; return -1; }
    return forward("fcntl64", fd, cmd, arg);
}
"""

#: Run under the shim: each lock call must fail with ENOLCK, other fcntl calls work.
SELF_TEST = """
import errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
for name, call in (("flock", lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)),
                   ("lockf", lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB))):
    try:
        call()
    except OSError as exc:
        assert exc.errno == errno.ENOLCK, (name, exc)
    else:
        raise SystemExit(name + " did not fail")
assert fcntl.fcntl(fd, fcntl.F_GETFD) >= 0
print("ok")
"""


@pytest.fixture(scope="session")
def no_lock_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``libnolock.so``: flock/fcntl locks fail with ENOLCK (checked before use)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("no C compiler to build the ENOLCK shim: install gcc (apt install gcc)")
    build = tmp_path_factory.mktemp("nolock")
    source = build / "nolock.c"
    source.write_text(SHIM, encoding="utf-8")
    library = build / "libnolock.so"
    compiled = subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    check = subprocess.run(
        [sys.executable, "-c", SELF_TEST, str(build / "probe")],
        env={"LD_PRELOAD": str(library), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.stdout.strip() == "ok", check.stdout + check.stderr
    return library


@pytest.fixture
def index(wheelhouse: Path, tmp_path: Path) -> Iterator[StaticServer]:
    """The standard wheelhouse over HTTP: shows whether an installer ever ran."""
    server = StaticServer(build_simple_index(wheelhouse, tmp_path / "index")).start()
    yield server
    server.stop()


def test_apply_without_locks_fails_at_once_and_changes_nothing(
    tmp_path: Path,
    no_lock_shim: Path,
    index: StaticServer,
    channel: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
) -> None:
    image = make_image(tmp_path / "image", channel, wheelhouse)
    managed, whole = Managed(image), env_hash(image)
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        {"image": {"prefix": image, "conda": ["condaonly"], "pip": ["delta"]}},
        pip={"index_url": f"{index.url}simple/"},
        channels=[channel.as_uri()],
    )
    state = tmp_path / "state"
    env = proc_env(isolated, tmp_path, LD_PRELOAD=str(no_lock_shim))

    run = run_cli(env, state, "apply", manifest)

    assert_clean_failure(
        run, "cannot lock", "the file system cannot lock files", "No locks available"
    )
    assert "nothing was applied" in run.stderr
    # At once: not after the 300 s lock timeout a held lock would be waited for.
    assert run.seconds < 60, f"took {run.seconds:.2f} s"
    assert index.requests() == []  # no resolver, no installer
    assert managed.unchanged() and env_hash(image) == whole
    assert not list((image / "conda-meta").glob("condaonly-*"))
    # No baseline, journal or owned set: nothing was recorded either.
    assert state_documents(state, image) == {}
    assert not (state / "status.json").exists()
