"""Real HTTP servers on 127.0.0.1 for tests: a PEP 503 package index and a static channel.

:func:`build_simple_index` turns a wheelhouse into a static PEP 503 "simple"
tree (``simple/<project>/index.html`` linking ``files/<wheel>`` with its sha256,
and a PEP 658 ``files/<wheel>.metadata`` file advertised with
``data-core-metadata``, so that a resolver reads metadata without downloading
wheels). :class:`StaticServer` serves any directory (that tree, or a conda
channel) with :class:`http.server.ThreadingHTTPServer` on an ephemeral port of
127.0.0.1, and can hold back responses: ``delay`` seconds before each response
whose path ends with one of ``delay_suffixes`` and that asks for the whole file
(a ``Range`` read of a wheel's file list is not delayed; by default only wheel
downloads, so previews stay fast and installs are slow). It accepts any HTTP
basic auth, answers single ``Range`` requests with ``206`` (``ranges = False``:
ignores them, as a server without range support) and records every request
(path, ``Authorization`` and ``Range`` headers and how it was answered).

Fault injection, per path: :meth:`StaticServer.script` answers the requests whose
path matches a glob with a queue of scripted responses (then, optionally, one
response forever). A response is an HTTP status code (``500``: an error page;
``200``: the file as usual), :data:`TRUNCATE` (headers with the full
``Content-Length``, half the body, then the connection is closed) or
:data:`STALL` (the request is read, nothing is ever sent; the connection is held
until the client gives up or the server stops). ``build_simple_index(...,
bad_hashes=[wheel])`` advertises a wrong ``#sha256=`` for those wheels.
"""

from __future__ import annotations

import fnmatch
import hashlib
import html
import json
import re
import threading
import zipfile
from collections import deque
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Union

from packaging.utils import canonicalize_name, parse_wheel_filename

__all__ = [
    "STALL",
    "TRUNCATE",
    "Request",
    "Response",
    "StaticServer",
    "build_simple_index",
    "serve",
]

#: Scripted response: send the headers and half the body, then close the connection.
TRUNCATE = "truncate"
#: Scripted response: read the request and never answer (until the server stops).
STALL = "stall"
#: A scripted response: an HTTP status code, :data:`TRUNCATE` or :data:`STALL`.
Response = Union[int, str]
_JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel_metadata(wheel: Path) -> bytes:
    """The ``*.dist-info/METADATA`` member of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)


def build_simple_index(
    wheelhouse: Path, dest: Path, *, bad_hashes: Collection[str] = (), json_pages: bool = False
) -> Path:
    """Write a static PEP 503 index of every wheel in ``wheelhouse`` under ``dest``.

    Layout: ``dest/simple/index.html``, ``dest/simple/<project>/index.html`` and
    ``dest/files/<wheel>`` plus ``dest/files/<wheel>.metadata`` (PEP 658). Serve
    ``dest``; the index URL is ``<server>/simple/``. Returns ``dest``. The links
    of the wheels named in ``bad_hashes`` carry a wrong ``#sha256=`` (the hash of
    other bytes); their PEP 658 metadata stays correct. ``json_pages`` also writes
    each project page as PEP 691 JSON (``index.json``), served instead of the HTML
    to a client whose ``Accept`` asks for ``application/vnd.pypi.simple.v1+json``.
    """
    files = dest / "files"
    files.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[str]] = {}
    json_files: dict[str, list[dict[str, Any]]] = {}
    for wheel in sorted(Path(wheelhouse).glob("*.whl")):
        data = wheel.read_bytes()
        metadata = _wheel_metadata(wheel)
        (files / wheel.name).write_bytes(data)
        (files / f"{wheel.name}.metadata").write_bytes(metadata)
        project = str(canonicalize_name(parse_wheel_filename(wheel.name)[0]))
        meta_hash = f"sha256={_sha256(metadata)}"
        link_hash = _sha256(b"not " + data if wheel.name in bad_hashes else data)
        projects.setdefault(project, []).append(
            f'<a href="../../files/{html.escape(wheel.name)}#sha256={link_hash}" '
            f'data-dist-info-metadata="{meta_hash}" data-core-metadata="{meta_hash}">'
            f"{html.escape(wheel.name)}</a><br/>"
        )
        json_files.setdefault(project, []).append(
            {
                "filename": wheel.name,
                "url": f"../../files/{wheel.name}",
                "hashes": {"sha256": link_hash},
                "core-metadata": {"sha256": _sha256(metadata)},
            }
        )
    simple = dest / "simple"
    for project, links in projects.items():
        page = simple / project
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n",
            encoding="utf-8",
        )
        if json_pages:
            page_json = {
                "meta": {"api-version": "1.1"},
                "name": project,
                "files": json_files[project],
            }
            (page / "index.json").write_text(json.dumps(page_json), encoding="utf-8")
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
    answer: Response = 200  # the scripted response, or 200 when served as usual
    range: str | None = None  # the Range header, if any
    agent: str = ""  # the User-Agent header (uv/..., pip/..., reconciler/...)


class _Handler(SimpleHTTPRequestHandler):
    """Static files; optional delay; scripted faults; any basic auth accepted; requests
    recorded."""

    server: _Server

    def _before(self) -> Response:
        ranged = self.headers.get("Range") is not None
        agent = self.headers.get("User-Agent", "")
        answer = self.server.next_answer(self.path.split("?", 1)[0], ranged, agent)
        self.server.record(
            Request(
                self.command,
                self.path,
                self.headers.get("Authorization"),
                answer,
                self.headers.get("Range"),
                agent,
            )
        )
        delay = self.server.delay
        whole = self.headers.get("Range") is None  # a range read is metadata, not a download
        if delay and whole and self.path.split("?", 1)[0].endswith(self.server.delay_suffixes):
            self.server.stopping.wait(delay)  # cut short when the server stops
        return answer

    def do_GET(self) -> None:
        answer = self._before()
        if answer == 200 and self._json_page():
            return
        if answer == 200 and self.server.ranges and self.headers.get("Range"):
            self._partial(self.headers["Range"])
        elif answer == 200:
            super().do_GET()
        else:
            self._fault(answer, body=True)

    def _json_page(self) -> bool:
        """PEP 691: a directory's ``index.json`` to a client that accepts JSON."""
        if _JSON_TYPE not in self.headers.get("Accept", ""):
            return False
        page = Path(self.translate_path(self.path)) / "index.json"
        if not self.path.split("?", 1)[0].endswith("/") or not page.is_file():
            return False
        data = page.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", _JSON_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return True

    def _partial(self, header: str) -> None:
        """``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` (one range) -> 206 or 416."""
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
        size = len(data)
        if match is None or not (match.group(1) or match.group(2)):
            start, end = size, size  # unsatisfiable
        elif not match.group(1):
            start, end = max(0, size - int(match.group(2))), size
        else:
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
        if start >= end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(data[start:end])

    def do_HEAD(self) -> None:
        answer = self._before()
        if answer == 200:
            super().do_HEAD()
        else:
            self._fault(answer, body=False)

    def _fault(self, answer: Response, *, body: bool) -> None:
        if answer == STALL:
            self.server.stopping.wait(self.server.stall_seconds)
            self.close_connection = True
            return
        if answer == TRUNCATE:
            path = Path(self.translate_path(self.path))
            data = path.read_bytes() if path.is_file() else b"x" * 4096
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
            self.close_connection = True
            return
        assert isinstance(answer, int), answer
        page = f"<html><body>scripted {answer}</body></html>\n".encode()
        self.send_response(answer)
        if answer == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        if body:
            self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are recorded on the server instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of connections (uv's, and the
    # clash check reading RECORDs from several wheels at once, a connection per range
    # request) overflowed it, and each dropped SYN was sent again after the kernel's
    # 1 s retransmission timeout (an apply of the restore bench at 1.17 s instead of
    # 0.17 s; ListenOverflows in /proc/net/netstat). A real index's is 511 or more.
    request_queue_size = 128

    def __init__(self, directory: Path) -> None:
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(directory)))
        self.delay = 0.0
        self.delay_suffixes: tuple[str, ...] = (".whl",)
        self.ranges = True
        self.stopping = threading.Event()
        self.stall_seconds = 120.0
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._scripts: list[tuple[str, deque[Response], Response | None, bool, str | None]] = []

    def record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def add_script(
        self,
        pattern: str,
        responses: deque[Response],
        then: Response | None,
        ranges: bool,
        agent: str | None,
    ) -> None:
        with self._lock:
            self._scripts.append((pattern, responses, then, ranges, agent))

    def next_answer(self, path: str, ranged: bool = False, agent: str = "") -> Response:
        """The scripted response for ``path`` (the first matching script), else 200."""
        with self._lock:
            for pattern, queue, then, ranges, who in self._scripts:
                if ranged and not ranges:
                    continue  # a Range read; the script is for whole requests
                if who is not None and not agent.startswith(who):
                    continue  # another client's request
                if fnmatch.fnmatchcase(path, pattern):
                    if queue:
                        return queue.popleft()
                    if then is not None:
                        return then
        return 200

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

    @property
    def ranges(self) -> bool:
        """Whether ``Range`` requests get ``206`` partial content (default); False: the
        whole file with ``200``, as a server without range support answers."""
        return self._server.ranges

    @ranges.setter
    def ranges(self, enabled: bool) -> None:
        self._server.ranges = enabled

    def requests(self) -> list[Request]:
        """Every request answered so far, in order."""
        return self._server.requests()

    def script(
        self,
        pattern: str,
        *responses: Response,
        then: Response | None = None,
        ranges: bool = False,
        agent: str | None = None,
    ) -> None:
        """Answer requests whose path (no query) matches the glob ``pattern`` with
        ``responses`` in order, then with ``then`` for ever (``None``: as usual).

        Responses are status codes (``200`` serves the file), :data:`TRUNCATE` or
        :data:`STALL`; the first script whose pattern matches a path applies. Only
        whole-file requests are scripted unless ``ranges``: a ``Range`` read (the
        plan reading a wheel's file list) is otherwise served as usual. With ``agent``
        (``"uv/"``, ``"reconciler/"``) only requests whose User-Agent starts with it are
        scripted: the installer's requests apart from reconciler's own reads.
        """
        self._server.add_script(pattern, deque(responses), then, ranges, agent)

    @property
    def stall_seconds(self) -> float:
        """How long a :data:`STALL` response holds the connection (cut short by stop)."""
        return self._server.stall_seconds

    @stall_seconds.setter
    def stall_seconds(self, seconds: float) -> None:
        self._server.stall_seconds = seconds

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
