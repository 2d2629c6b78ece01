"""SHA-256 of small inputs (stamps, cache keys, fingerprints) without loading OpenSSL.

``hashlib.sha256`` is OpenSSL's: importing :mod:`hashlib` loads libcrypto, ~3 ms, more
than the no-op fast path's own work. CPython also builds its own SHA-256 (``_sha2``
from 3.12, ``_sha256`` before): the same digest, slower per byte than OpenSSL's, so
file contents (RECORD checks, downloaded wheels) still go through :mod:`hashlib`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time (the fast path uses this module)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Digest(Protocol):
        """What a ``sha256`` object offers."""

        def update(self, data: bytes, /) -> None: ...
        def hexdigest(self) -> str: ...


__all__ = ["sha256"]


def _constructor() -> Callable[[bytes], Digest]:
    name = "_sha2" if sys.version_info >= (3, 12) else "_sha256"
    try:
        built_in: Callable[[bytes], Digest] = __import__(name).sha256
    except (ImportError, AttributeError):  # not CPython, or built without it
        import hashlib

        return hashlib.sha256
    return built_in


_SHA256 = _constructor()


def sha256(data: bytes = b"") -> Digest:
    """A SHA-256 object fed ``data`` (the same digest as ``hashlib.sha256(data)``)."""
    return _SHA256(data)
