"""Small, bounded HTTP GETs for reading package indexes and wheel metadata.

The same bounds as the installers get (:mod:`reconciler.backends.pip_args`): a
per-read timeout of ``HTTP_READ_TIMEOUT`` seconds and ``HTTP_RETRIES`` retries
with backoff for a 5xx answer, a reset or a timeout. Credentials in a URL
(``https://user:token@host/simple/``) become a basic ``Authorization`` header,
sent to that host only (as pip does for links on the index's host), and never
appear in a message: every URL in an error is redacted.
"""

from __future__ import annotations

import base64
import http.client
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from reconciler import __version__
from reconciler.backends import outside
from reconciler.backends.pip_args import HTTP_READ_TIMEOUT, HTTP_RETRIES
from reconciler.backends.process import redact
from reconciler.errors import BackendError
from reconciler.values import value

__all__ = ["USER_AGENT", "HttpClient", "Response"]

#: What reconciler's own reads (wheel listings, RECORDs, metadata) call themselves, so
#: that an index's logs tell them from the installers' downloads.
USER_AGENT = f"reconciler/{__version__}"

_BACKOFF_SECONDS = 0.5
_POLL_SECONDS = 0.2
T = TypeVar("T")


@value
class Response:
    """A finished GET: its status, headers (lower-case names), final URL and body."""

    status: int
    headers: Mapping[str, str]
    url: str
    body: bytes


class HttpClient:
    """GETs with the network bounds and per-host credentials (see module docstring)."""

    def __init__(self, *, timeout: float = HTTP_READ_TIMEOUT, retries: int = HTTP_RETRIES) -> None:
        self.timeout = timeout
        self.retries = retries
        self._auth: dict[str, str] = {}
        # Proxies from the environment as pip and uv honour them; no redirect handler
        # surprises: urllib follows redirects and reports the final URL.
        self._opener = urllib.request.build_opener()

    def clean(self, url: str) -> str:
        """``url`` without its credentials, which are remembered for its host."""
        parts = urlsplit(url)
        if parts.username is None:
            return url
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(secret.encode()).decode("ascii")
        self._auth[parts.hostname or ""] = f"Basic {token}"
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url`` and read the body whole; retried on 5xx, resets, timeouts and
        truncated bodies. A 4xx answer is returned, not raised.

        The request runs in a helper thread so that a SIGTERM stop request
        (:mod:`reconciler.faults`) ends the wait at once instead of after the
        timeouts: nothing has been changed while an index is read."""
        return _interruptible(lambda: self._get(url, headers), url)

    def _get(self, url: str, headers: Mapping[str, str] | None) -> Response:
        for attempt in range(self.retries + 1):
            try:
                with self.open(url, headers, retry=False) as (status, got, final, stream):
                    return Response(status, got, final, stream.read())
            except _Transient as exc:
                if attempt == self.retries:
                    raise self._failed(url, exc.why) from exc
            except (OSError, http.client.HTTPException) as exc:  # while reading the body
                if attempt == self.retries:
                    raise self._failed(url, str(exc)) from exc
            time.sleep(_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def open(
        self, url: str, headers: Mapping[str, str] | None = None, *, retry: bool = True
    ) -> Iterator[tuple[int, dict[str, str], str, IO[bytes]]]:
        """GET ``url`` and yield ``(status, headers, final url, body stream)``.

        Retried on 5xx, resets and timeouts until the headers arrive; a 4xx answer
        is yielded with its (error page) body.
        """
        url = self.clean(url)
        outside.note("http")  # a repeated plan that read an index is not replayed
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
        host = urlsplit(url).hostname or ""
        if host in self._auth:
            request.add_unredirected_header("Authorization", self._auth[host])
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = _interruptible(
                    lambda: self._opener.open(request, timeout=self.timeout), url
                )
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    try:
                        yield exc.code, _lower(exc.headers), exc.geturl() or url, exc
                    finally:
                        exc.close()
                    return
                exc.close()
                why = f"HTTP {exc.code}"
            except (OSError, http.client.HTTPException) as exc:
                why = str(getattr(exc, "reason", exc))
            else:
                try:
                    yield response.status, _lower(response.headers), response.geturl(), response
                finally:
                    response.close()
                return
            if attempt + 1 < attempts:
                time.sleep(_BACKOFF_SECONDS * 2**attempt)
        if not retry:
            raise _Transient(why)
        raise self._failed(url, why)

    def _failed(self, url: str, why: str) -> BackendError:
        return BackendError(
            f"cannot read {redact(url)}: {redact(why)} (after {self.retries + 1} attempts)",
            hint="check that the package index or find-links location is reachable",
        )


def _interruptible(call: Callable[[], T], url: str) -> T:
    """``call()`` in a helper thread; a SIGTERM stop request ends the wait at once."""
    from reconciler import faults

    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, call()))
        except BaseException as exc:  # handed to the waiting thread
            box.append((False, exc))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(_POLL_SECONDS)
        if worker.is_alive() and faults.stop_requested():
            raise faults.Interrupted(
                f"stopped by {faults.stop_reason()} while reading {redact(url)}; nothing was "
                "changed",
                hint="run `reconciler apply` again to finish",
            )
    ok, value = box[0]
    if not ok:
        raise value
    result: T = value
    return result


class _Transient(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _lower(headers: object) -> dict[str, str]:
    items = headers.items() if hasattr(headers, "items") else []
    return {str(k).lower(): str(v) for k, v in items}
