"""The exact wheel a resolved ``name==version`` installs, as the lock file records it.

:func:`reconciler.backends.wheels.locate_wheel` finds the file the installer would
take (find-links, then the indexes in uv's first-index order, best tag for the
target interpreter); this adds what a lock needs: the sha256 always (a link
without ``#sha256=`` is downloaded and hashed) and the origin without credentials.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import BackendError
from reconciler.lockfile.fresh import strip_credentials
from reconciler.lockfile.model import LockedWheel
from reconciler.manifest.model import PipSettings

__all__ = ["locate_locked", "tags_of"]


def tags_of(python: Path) -> tuple[str, ...]:
    """The wheel tags the environment's interpreter accepts, best first."""
    from reconciler.backends.wheels import target_tags

    return target_tags(python)


def locate_locked(
    name: str,
    version: str,
    settings: PipSettings,
    tags: Sequence[str],
    cache_dir: Path | None = None,
) -> LockedWheel:
    """The lock entry of ``name==version``; BackendError when no source offers its wheel.

    With ``cache_dir`` the wheel's RECORD is read into the records cache too, so that
    the file-clash check of a locked plan needs no network later (an offline restore).
    """
    from reconciler.backends.wheels import locate_wheel

    wheel = locate_wheel(name, version, settings, tags)
    if wheel is None:
        where = [*settings.find_links, *([settings.index_url] if settings.index_url else [])]
        raise BackendError(
            f"cannot lock {name} {version}: no compatible wheel of it was found"
            + (f" on {', '.join(strip_credentials(w) for w in where)}" if where else ""),
            hint="check the package index and find_links in the manifest",
        )
    sha256 = wheel.sha256
    if sha256 is None:
        from reconciler.backends.http import HttpClient

        response = HttpClient().get(wheel.url)
        if response.status != 200:
            raise BackendError(
                f"cannot lock {name} {version}: downloading {wheel.filename} to hash it "
                f"failed (HTTP {response.status})",
                hint="check that the package index is reachable",
            )
        sha256 = hashlib.sha256(response.body).hexdigest()
    if cache_dir is not None:
        import contextlib

        from reconciler.backends.wheels import read_record
        from reconciler.values import replace

        with contextlib.suppress(BackendError):  # derived data: the plan reads it again
            read_record(replace(wheel, sha256=sha256), cache_dir)
    source = strip_credentials(wheel.source.replace("***@", ""))
    return LockedWheel(wheel.name, version, wheel.filename, sha256, source)
