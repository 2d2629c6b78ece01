"""One thing wrong with a manifest (importable as ``reconciler.errors.Problem``).

It lives apart from :mod:`reconciler.errors`, which every run imports, because a class
costs instructions to define (a value class ~0.2 M, a frozen dataclass ~4.5 M on
Python 3.11) and only an invalid or unreadable manifest needs this one.
"""

from __future__ import annotations

from reconciler.values import value

__all__ = ["Problem"]


@value
class Problem:
    """One thing wrong with a manifest: ``file:line:col: path: message``."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
