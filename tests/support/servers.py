"""Real HTTP servers on 127.0.0.1 for tests: a PEP 503 package index and a static channel.

:func:`build_simple_index` turns a wheelhouse into a static PEP 503 "simple"
tree (``simple/<project>/index.html`` linking ``files/<wheel>`` with its sha256,
and a PEP 658 ``files/<wheel>.metadata`` file advertised with
``data-core-metadata``, so that a resolver reads metadata without downloading
wheels). :class:`StaticServer` serves any directory (that tree, or a conda
channel) with :class:`http.server.ThreadingHTTPServer` on an ephemeral port of
127.0.0.1, and can hold back responses: ``delay`` seconds before each response
whose path ends with one of ``delay_suffixes`` (by default only wheel
downloads, so previews stay fast and installs are slow). It accepts any HTTP
basic auth and records every request (path and ``Authorization`` header).
"""

from __future__ import annotations

import hashlib
import html
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

__all__ = ["Request", "StaticServer", "build_simple_index", "serve"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel_metadata(wheel: Path) -> bytes:
    """The ``*.dist-info/METADATA`` member of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)


def build_simple_index(wheelhouse: Path, dest: Path) -> Path:
    """Write a static PEP 503 index of every wheel in ``wheelhouse`` under ``dest``.

    Layout: ``dest/simple/index.html``, ``dest/simple/<project>/index.html`` and
    ``dest/files/<wheel>`` plus ``dest/files/<wheel>.metadata`` (PEP 658). Serve
    ``dest``; the index URL is ``<server>/simple/``. Returns ``dest``.
    """
    files = dest / "files"
    files.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[str]] = {}
    for wheel in sorted(Path(wheelhouse).glob("*.whl")):
        data = wheel.read_bytes()
        metadata = _wheel_metadata(wheel)
        (files / wheel.name).write_bytes(data)
        (files / f"{wheel.name}.metadata").write_bytes(metadata)
        project = str(canonicalize_name(parse_wheel_filename(wheel.name)[0]))
        meta_hash = f"sha256={_sha256(metadata)}"
        projects.setdefault(project, []).append(
            f'<a href="../../files/{html.escape(wheel.name)}#sha256={_sha256(data)}" '
            f'data-dist-info-metadata="{meta_hash}" data-core-metadata="{meta_hash}">'
            f"{html.escape(wheel.name)}</a><br/>"
        )
    simple = dest / "simple"
    for project, links in projects.items():
        page = simple / project
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n",
            encoding="utf-8",
        )
    (simple / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n"
        + "\n".join(f'<a href="{p}/">{p}</a><br/>' for p in sorted(projects))
        + "\n</body></html>\n",
        encoding="utf-8",
    )
    return dest


@dataclass(frozen=True)
class Request:
    """One request the server answered."""

    method: str
    path: str
    authorization: str | None


class _Handler(SimpleHTTPRequestHandler):
    """Static files; optional delay; any basic auth accepted; requests recorded."""

    server: _Server

    def _before(self) -> None:
        self.server.record(Request(self.command, self.path, self.headers.get("Authorization")))
        delay = self.server.delay
        if delay and self.path.split("?", 1)[0].endswith(self.server.delay_suffixes):
            self.server.stopping.wait(delay)  # cut short when the server stops

    def do_GET(self) -> None:
        self._before()
        super().do_GET()

    def do_HEAD(self) -> None:
        self._before()
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are recorded on the server instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, directory: Path) -> None:
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(directory)))
        self.delay = 0.0
        self.delay_suffixes: tuple[str, ...] = (".whl",)
        self.stopping = threading.Event()
        self._requests: list[Request] = []
        self._lock = threading.Lock()

    def record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed mid-download) is not an error worth printing."""


class StaticServer:
    """A running server for ``directory`` on ``http://127.0.0.1:<port>/``."""

    def __init__(self, directory: Path) -> None:
        self._server = _Server(directory)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        """The ephemeral port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/``."""
        return f"http://127.0.0.1:{self.port}/"

    def url_with(self, userinfo: str, path: str = "") -> str:
        """``http://<userinfo>@127.0.0.1:<port>/<path>`` (credentials in the URL)."""
        return f"http://{userinfo}@127.0.0.1:{self.port}/{path}"

    @property
    def delay(self) -> float:
        """Seconds each delayed response waits."""
        return self._server.delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self._server.delay = seconds

    @property
    def delay_suffixes(self) -> tuple[str, ...]:
        """Paths ending with one of these are delayed (default: wheels)."""
        return self._server.delay_suffixes

    @delay_suffixes.setter
    def delay_suffixes(self, suffixes: tuple[str, ...]) -> None:
        self._server.delay_suffixes = suffixes

    def requests(self) -> list[Request]:
        """Every request answered so far, in order."""
        return self._server.requests()

    def start(self) -> StaticServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (delayed responses end now) and close the socket."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serve(directory: Path, *, delay: float = 0.0) -> Iterator[StaticServer]:
    """Serve ``directory`` for the duration of the ``with`` block."""
    server = StaticServer(directory)
    server.delay = delay
    server.start()
    try:
        yield server
    finally:
        server.stop()
