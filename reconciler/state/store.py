"""The tool's own state: baselines, owned packages and caches, as JSON files.

Layout under the state dir (``--state-dir``, ``RECONCILER_STATE_DIR``,
default ``~/.local/state/reconciler``)::

    envs/<key>/baseline.json   the managed set captured from the live environment
    envs/<key>/owned.json      what reconciler installed
    cache/read-cache.json      ReadCache (derived data; safe to delete)

``<key>`` is derived from the environment's prefix. Every write is atomic
(temp file in the same directory, fsync, rename): no reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Mapping
from itertools import chain
from pathlib import Path

from reconciler.digest import sha256
from reconciler.errors import StateError
from reconciler.state.cache import ReadCache
from reconciler.state.environment import InstalledState, Package, image_identity
from reconciler.tempfiles import mkstemp, replace_file
from reconciler.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reconciler.manifest.loader import ValidationMemo

__all__ = [
    "Baseline",
    "Owned",
    "OwnedPackage",
    "StateStore",
    "StateWriteError",
    "default_state_dir",
    "write_json_atomic",
]

FORMAT = 1


def default_state_dir() -> Path:
    """``$RECONCILER_STATE_DIR`` or ``~/.local/state/reconciler``."""
    env = os.environ.get("RECONCILER_STATE_DIR")
    if env:
        return Path(env).expanduser()
    return Path("~/.local/state/reconciler").expanduser()


class StateWriteError(StateError, OSError):
    """A state file could not be written (full disk, read-only, permissions).

    Also an OSError, so that callers writing derived data (caches) on a best-effort
    basis keep catching it as one.
    """


def write_json_atomic(path: Path, data: Any, *, derived: bool = False) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old or the new file, whole.

    The old file is untouched when the write fails: a full disk never leaves half a
    state file, and the failure is a StateWriteError that says what to do.
    ``derived`` (caches, rebuilt when damaged): compact JSON, written by the C
    encoder in one piece, and not fsynced (a cache lost in a crash is rebuilt).
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = mkstemp(f".{path.name}.", ".tmp", str(path.parent))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if derived:
                # No cycle check: the data is made of what JSON reads (17% of the read
                # cache's encoding).
                f.write(json.dumps(data, separators=(",", ":"), check_circular=False))
            else:
                json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            if not derived:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise StateWriteError(
            f"cannot write the state file {path}: "
            + ("the disk is full (no space left on device)" if full else str(exc.strerror or exc)),
            hint="free some space on that file system and run again"
            if full
            else "check that the state directory is writable (--state-dir)",
        ) from exc
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


@value
class Baseline:
    """The managed set of one environment: every package present when it was captured."""

    prefix: str
    captured_at: str
    image: str | None
    packages: Mapping[str, Mapping[str, str]]  # key -> {name, manager, version, build}
    #: Set when this baseline replaced one of another image: when that one was captured.
    replaced: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": FORMAT,
            "prefix": self.prefix,
            "captured_at": self.captured_at,
            "image": self.image,
            "replaced": self.replaced,
            "packages": {k: dict(v) for k, v in sorted(self.packages.items())},
        }

    def changes_to(self, new: Baseline) -> tuple[list[str], list[str], list[str]]:
        """What replacing this baseline with ``new`` changes: packages that become
        managed, stop being managed, and are managed at another version; each as
        ``pip alpha 1.0`` (``pip alpha 1.0 -> 2.0``), sorted."""

        def shown(p: Mapping[str, str]) -> str:
            return f"{p['manager']} {p['name']} {p['version']}"

        old, now = self.packages, new.packages
        added = sorted(shown(now[k]) for k in now.keys() - old.keys())
        dropped = sorted(shown(old[k]) for k in old.keys() - now.keys())
        moved = sorted(
            f"{shown(old[k])} -> {now[k]['version']}"
            for k in old.keys() & now.keys()
            if (old[k]["version"], old[k].get("build", "")) != (now[k]["version"], now[k]["build"])
        )
        return added, dropped, moved

    @classmethod
    def from_state(cls, state: InstalledState, owned: Owned) -> Baseline:
        """Capture from the live environment, leaving out what reconciler owns."""
        packages = {
            key: {"name": p.name, "manager": p.manager, "version": p.version, "build": p.build}
            for key, p in state.packages().items()
            if not owned.owns(p)
        }
        return cls(
            prefix=str(state.prefix),
            captured_at=_now(),
            image=image_identity(state.prefix),
            packages=packages,
        )


@value
class OwnedPackage:
    """A package reconciler installed, at the version it installed."""

    name: str
    manager: str
    version: str


@value
class Owned:
    """Packages reconciler installed in one environment, by key."""

    packages: Mapping[str, OwnedPackage]

    def owns(self, package: Package) -> bool:
        """True when ``package`` was installed by reconciler (any version: it may move)."""
        return package.key in self.packages

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": FORMAT,
            "packages": {
                k: {"name": p.name, "manager": p.manager, "version": p.version}
                for k, p in sorted(self.packages.items())
            },
        }


_BASELINE_FIELDS = frozenset({"name", "manager", "version"})


def _well_formed(packages: dict[str, Any]) -> bool:
    """Every entry a mapping with at least name, manager and version (C-level loops)."""
    values = packages.values()
    return set(map(type, values)) <= {dict} and all(map(_BASELINE_FIELDS.issubset, values))


def _only_strings(packages: dict[str, dict[str, Any]]) -> bool:
    return set(map(type, chain.from_iterable(map(dict.values, packages.values())))) <= {str}


_RECAPTURE = (
    "run `reconciler baseline capture` to record it again from the live environment "
    "(it replaces this file)"
)
_OWNED_ASIDE = "move it aside; reconciler then treats those packages as foreign"


def _now() -> str:
    """UTC now to the second, ISO 8601: ``2026-01-31T12:00:00+00:00`` (what
    ``datetime.now(timezone.utc).replace(microsecond=0).isoformat()`` says, without
    importing datetime on every write)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


class StateStore:
    """Reads and writes the state dir. Corrupt files are errors, never an empty managed set."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def env_dir(self, prefix: Path) -> Path:
        """The directory holding one environment's state files."""
        digest = sha256(str(prefix).encode()).hexdigest()[:16]
        return self.root / "envs" / f"{prefix.name or 'root'}-{digest}"

    def _read(self, path: Path, hint: str) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as f:  # one read, then the C decoder: no text layer
                data = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(
                f"state file {path} is unreadable or corrupt ({exc})", hint=hint
            ) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StateError(
                f"state file {path} is not a reconciler v{FORMAT} state file", hint=hint
            )
        return data

    def baseline(self, prefix: Path) -> Baseline | None:
        """The recorded baseline of ``prefix``, or None if none was captured."""
        path = self.env_dir(prefix) / "baseline.json"
        data = self._read(path, _RECAPTURE)
        if data is None:
            return None
        packages = data.get("packages")
        if not isinstance(packages, dict) or not _well_formed(packages):
            raise StateError(f"baseline {path} is corrupt (bad 'packages')", hint=_RECAPTURE)
        # What reconciler writes holds only strings: taken as parsed (50 baselines of
        # 1,000 packages); anything else (a hand edit) is made strings as before.
        if not _only_strings(packages):
            packages = {k: {kk: str(vv) for kk, vv in v.items()} for k, v in packages.items()}
        return Baseline(
            prefix=str(data.get("prefix", prefix)),
            captured_at=str(data.get("captured_at", "")),
            image=data.get("image"),
            packages=packages,
            replaced=data.get("replaced"),
        )

    def save_baseline(self, prefix: Path, baseline: Baseline) -> None:
        """Record ``baseline`` for ``prefix``."""
        write_json_atomic(self.env_dir(prefix) / "baseline.json", baseline.to_json())

    def owned(self, prefix: Path) -> Owned:
        """Owned packages of ``prefix`` (empty when nothing was installed yet)."""
        path = self.env_dir(prefix) / "owned.json"
        data = self._read(path, _OWNED_ASIDE)
        if data is None:
            return Owned(packages={})
        packages = data.get("packages")
        if not isinstance(packages, dict):
            raise StateError(f"state file {path} is corrupt (bad 'packages')", hint=_OWNED_ASIDE)
        return Owned(
            packages={
                k: OwnedPackage(str(v["name"]), str(v["manager"]), str(v["version"]))
                for k, v in packages.items()
                if isinstance(v, dict) and {"name", "manager", "version"} <= v.keys()
            }
        )

    def save_owned(self, prefix: Path, owned: Owned) -> None:
        """Record ``owned`` for ``prefix``."""
        write_json_atomic(self.env_dir(prefix) / "owned.json", owned.to_json())

    def validation_memo(self) -> ValidationMemo:
        """Pure manifest checks that passed before (derived data; a damaged file is ignored)."""
        from reconciler.manifest.loader import ValidationMemo

        try:
            with (self.root / "cache" / "manifests.json").open(encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return ValidationMemo()
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return ValidationMemo()
        keys = data.get("schema_valid")
        specs = data.get("conda_specs")
        models = data.get("models")
        return ValidationMemo(
            models=dict(models) if isinstance(models, dict) else {},
            schema_valid={k for k in keys if isinstance(k, str)}
            if isinstance(keys, list)
            else set(),
            conda_specs={
                k: (str(v[0]), None if v[1] is None else str(v[1]), bool(v[2]))
                for k, v in (specs.items() if isinstance(specs, dict) else ())
                if isinstance(v, list) and len(v) == 3
            },
        )

    def save_validation_memo(self, memo: ValidationMemo) -> None:
        """Persist ``memo`` if it changed, keeping it small; best effort."""
        if not memo.changed:
            return
        from reconciler.manifest.loader import KEPT_MODELS

        data = {
            "format": FORMAT,
            "schema_valid": sorted(memo.schema_valid)[-50:],
            "conda_specs": {k: list(v) for k, v in list(memo.conda_specs.items())[-500:]},
            "models": dict(list(memo.models.items())[-KEPT_MODELS:]),
        }
        try:
            write_json_atomic(self.root / "cache" / "manifests.json", data, derived=True)
        except OSError:
            return

    def read_cache(self) -> ReadCache:
        """The installed-state read cache; a damaged cache is simply rebuilt."""
        try:
            with open(self.root / "cache" / "read-cache.json", "rb") as f:
                text = f.read()
            data = json.loads(text.decode("utf-8"))
        except (OSError, ValueError):
            return ReadCache()
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return ReadCache()
        return ReadCache(data, text=text)

    def save_read_cache(self, cache: ReadCache) -> None:
        """Persist the cache when it changed; best effort (it is derived data)."""
        if not cache.changed:
            return
        text = cache.encode(f'"format":{FORMAT}')
        with contextlib.suppress(OSError):
            replace_file(str(self.root / "cache" / "read-cache.json"), text, ".read-cache.json.")
