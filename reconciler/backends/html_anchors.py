"""The ``<a>`` and ``<base>`` tags of an HTML page (a PEP 503 index page, a find-links page).

Apart from :mod:`reconciler.backends.wheels` so that :mod:`html.parser` (with
``html.entities`` and its regular expressions, ~3 ms) loads only when a page is read:
a plan from local find-links directories reads none.
"""

from __future__ import annotations

import html.parser

__all__ = ["Anchors"]


class Anchors(html.parser.HTMLParser):
    """Collects the first ``<base href>`` and the attributes of every ``<a>``."""

    def __init__(self) -> None:
        super().__init__()
        self.base: str | None = None
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Remember ``<base href>`` (the first) and each anchor's attributes."""
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self.anchors.append(dict(attrs))
