"""What the manifest checks read from the machine: whether prefixes exist, are conda
environments, or resolve through a symbolic link.

Shared by :mod:`reconciler.manifest.semantics` (which reports each problem with
its position) and the loader's remembered models (which are reused only while
none of these checks would report anything). Imports nothing heavy.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    from reconciler.manifest.model import Manifest

__all__ = ["prefix_kind", "prefixes_allow", "symlink_in"]  # (and PrefixKind, to the checker)

if TYPE_CHECKING:
    #: ``absent``: nothing there; ``conda``: a directory with ``conda-meta/``; ``plain``:
    #: a directory without it; ``other``: something that is not a directory.
    PrefixKind = Literal["absent", "conda", "plain", "other"]


def prefix_kind(prefix: str) -> PrefixKind:
    """What is at ``prefix`` now."""
    if not os.path.lexists(prefix):
        return "absent"
    if not os.path.isdir(prefix):
        return "other"
    return "conda" if os.path.isdir(os.path.join(prefix, "conda-meta")) else "plain"


def symlink_in(path: str) -> str | None:
    """The first component of the absolute ``path`` that is a symbolic link, or None."""
    current = os.sep
    for part in path.split(os.sep):
        if not part:
            continue
        current = os.path.join(current, part)
        if os.path.islink(current):
            return current
        if not os.path.lexists(current):
            return None
    return None


def prefixes_allow(manifest: Manifest) -> bool:
    """True when the prefix checks of :func:`reconciler.manifest.semantics.build_manifest`
    (``check_prefixes=True``) would report nothing for this valid ``manifest`` now."""
    for env in manifest.environments:
        prefix = str(env.prefix)
        if symlink_in(prefix) is not None:
            return False
        kind = prefix_kind(prefix)
        if kind == "other":
            return False
        wants_conda = bool(env.conda) or (env.create is not None and env.create.python is not None)
        if kind == "plain" and wants_conda:
            return False
    return True
