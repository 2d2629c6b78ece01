"""Project names in their canonical form (PEP 503), without importing ``packaging.utils``.

``packaging.utils`` imports ``packaging.tags`` and with it ``logging``, ``platform`` and
``sysconfig`` (~10 ms) that a plan which reads no wheel never needs. PEP 503 defines
the form by its code, ``re.sub(r"[-_.]+", "-", name).lower()``; this is
``packaging.utils.canonicalize_name``'s way of computing it (without ``re``), which
``tests/test_names.py`` checks it against.
"""

from __future__ import annotations

__all__ = ["canonical_name"]


def canonical_name(name: str) -> str:
    """``name`` lower-cased, each run of ``-``, ``_`` and ``.`` one ``-`` (PEP 503)."""
    value = name.lower().replace("_", "-").replace(".", "-")
    while "--" in value:
        value = value.replace("--", "-")
    return value
