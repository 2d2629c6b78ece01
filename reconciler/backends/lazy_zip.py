"""A remote zip file read with HTTP range requests, as pip's lazy wheel does.

:func:`open_remote_zip` asks for the last :data:`CHUNK` bytes
(``Range: bytes=-65536``). A ``206`` answer gives the file's size and its tail,
which holds the end-of-central-directory record and, for most wheels, the whole
central directory; :class:`RangeFile` then serves :mod:`zipfile`'s reads and
fetches whatever else it touches (the rest of a large central directory, the
RECORD member) in further range requests of at least :data:`CHUNK` bytes. A
server that ignores ``Range`` answers ``200`` with the whole file: it is copied into
the caller's sink instead (a full download).
"""

from __future__ import annotations

import io
import re
import shutil
from bisect import bisect_right
from typing import IO

from reconciler.backends.http import HttpClient
from reconciler.errors import BackendError

__all__ = ["CHUNK", "RangeFile", "open_remote_zip"]

#: The size of the first (tail) request and the least any later request fetches.
CHUNK = 1 << 16

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def open_remote_zip(http: HttpClient, url: str, sink: IO[bytes]) -> RangeFile | None:
    """A :class:`RangeFile` for ``url``; or, when the server answers the range request
    with the whole file, None after copying that file into ``sink``."""
    headers = {"Range": f"bytes=-{CHUNK}", "Accept-Encoding": "identity"}
    with http.open(url, headers) as (status, got, _, stream):
        if status == 200:
            shutil.copyfileobj(stream, sink, 1 << 20)
            return None
        if status != 206:
            raise BackendError(
                f"cannot read a wheel: HTTP {status}",
                hint="check the wheel's URL on the index and its credentials",
            )
        body = stream.read()
    match = _CONTENT_RANGE.fullmatch(got.get("content-range", "").strip())
    if match is None:
        raise BackendError(
            f"a range request for a wheel was answered with {got.get('content-range')!r}",
            hint="the server's range support is broken; report it to the index's operator",
        )
    start, size = int(match.group(1)), int(match.group(3))
    return RangeFile(http, url, size, {start: body})


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file of ``size`` bytes, fetched by range."""

    def __init__(self, http: HttpClient, url: str, size: int, chunks: dict[int, bytes]) -> None:
        super().__init__()
        self._http = http
        self._url = url
        self._size = size
        self._pos = 0
        self._starts: list[int] = sorted(chunks)
        self._chunks = dict(chunks)
        self.requests = 1  # the tail request that found the size

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Always seekable."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` relative to ``whence``, as for a regular file."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the current position, fetching missing bytes."""
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = self._read_at(self._pos, want)
        memoryview(buffer)[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _read_at(self, start: int, length: int) -> bytes:
        out = bytearray()
        pos, end = start, start + length
        while pos < end:
            chunk_start, chunk = self._covering(pos)
            if chunk is None:
                chunk_start, chunk = self._fetch(pos, max(end, pos + CHUNK))
            piece = chunk[pos - chunk_start : end - chunk_start]
            if not piece:
                break
            out += piece
            pos += len(piece)
        return bytes(out)

    def _covering(self, pos: int) -> tuple[int, bytes | None]:
        i = bisect_right(self._starts, pos) - 1
        if i >= 0:
            start = self._starts[i]
            chunk = self._chunks[start]
            if pos < start + len(chunk):
                return start, chunk
        return pos, None

    def _fetch(self, start: int, end: int) -> tuple[int, bytes]:
        end = min(end, self._size)
        response = self._http.get(
            self._url, {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        )
        self.requests += 1
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if response.status != 206 or match is None or int(match.group(1)) != start:
            raise BackendError(
                f"a range request for a wheel was answered with HTTP {response.status}",
                hint="the server stopped honouring ranges; try again",
            )
        self._chunks[start] = response.body
        self._starts = sorted(self._chunks)
        return start, response.body
