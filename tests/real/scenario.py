"""One real-package scenario: an image clone, its manifest, the reconciler CLI as a process.

:class:`Real` writes offline manifests (``no_index`` + ``find_links`` to the
wheel cache), runs ``python -m reconciler`` in the isolated environment and
checks every plan for the properties of :mod:`tests.support.plan_checks`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.real.stack import SITE, installed_versions
from tests.support.envs import tree_hash
from tests.support.plan_checks import (
    assert_refusals_quote_excluding_requirements,
    assert_transitive_changes_have_required_by,
)

__all__ = [
    "HELD_BACK",
    "HELD_BACK_TEXT",
    "REPO",
    "Real",
    "assert_refused_apply_changes_nothing",
    "body",
    "held_back_core",
]

REPO = Path(__file__).resolve().parents[2]

#: black 22.12.0 is planned because black 24.4.2 needs packaging>=22.0 (managed at 21.3):
#: the ``held_back`` of the change, without its optional ``status`` (see :func:`held_back_core`).
HELD_BACK = {
    "newest": "24.4.2",
    "by": [{"name": "packaging", "version": "21.3", "requirement": "packaging>=22.0"}],
}
#: How the text plan starts saying it (the holder's wording follows).
HELD_BACK_TEXT = "      held back: newest is 24.4.2; black 24.4.2 requires packaging>=22.0"


@dataclass
class Real:
    """One scenario: an image clone, its manifest and the reconciler CLI as a process."""

    prefix: Path
    wheels: Path
    env: dict[str, str]
    root: Path
    #: site-packages entries of the image that are real copies in this clone.
    image_entries: frozenset[str] = field(default=frozenset(), repr=False)

    def manifest(
        self, pip: Sequence[str], *, kernel: dict[str, str] | None = None, **options: Any
    ) -> Path:
        """Write ``manifest.yaml``: environment ``image`` with ``pip``, offline from the cache.

        ``options`` go into ``defaults`` (e.g. ``installer="pip"``); ``protect``
        is top level; ``kernel`` is the environment's.
        """
        protect = options.pop("protect", None)
        defaults: dict[str, Any] = {"pip": {"no_index": True, "find_links": [str(self.wheels)]}}
        defaults.update(options)
        document: dict[str, Any] = {"version": 1, "defaults": defaults}
        if protect:
            document["protect"] = list(protect)
        environment: dict[str, Any] = {"prefix": str(self.prefix), "pip": list(pip)}
        if kernel is not None:
            environment["kernel"] = kernel
        document["environments"] = {"image": environment}
        path = self.root / "manifest.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """``python -m reconciler ARGS`` as a separate process in the isolated environment."""
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *map(str, args)],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def plan(
        self, pip: Sequence[str], *, check: bool = True, **options: Any
    ) -> tuple[int, str, dict[str, Any]]:
        """``plan MANIFEST --out FILE`` of ``pip``: (exit code, text, the saved plan document).

        One process gives both the text and the JSON. With ``check`` the
        document must have the refusal and chain properties (:meth:`check`);
        contract tests check them last, after their own asserts.
        """
        manifest = self.manifest(pip, **options)
        out = self.root / "plan.json"
        out.unlink(missing_ok=True)
        result = self.run("plan", manifest, "--out", out)
        assert result.returncode in (0, 2, 3), result.stdout + result.stderr
        document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        if check:
            self.check(document)
        return result.returncode, result.stdout, document

    def check(self, document: dict[str, Any]) -> None:
        """Assert the plan properties of :mod:`tests.support.plan_checks` (issue 9, 1 and 2)."""
        assert_refusals_quote_excluding_requirements(document)
        assert_transitive_changes_have_required_by(document)

    def apply(
        self, pip: Sequence[str], *args: str, **options: Any
    ) -> subprocess.CompletedProcess[str]:
        """``apply`` of a manifest with ``pip`` (``args`` after the manifest)."""
        return self.run("apply", self.manifest(pip, **options), *args)

    def changes(self, document: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """``name`` -> pip change of the (single) environment; conda lines are keyed ``conda:``."""
        out: dict[str, dict[str, Any]] = {}
        for change in document["environments"][0]["changes"]:
            key = change["name"] if change["manager"] == "pip" else f"conda:{change['name']}"
            out[key] = change
        return out

    def managed_hash(self) -> str:
        """Hash of the image's site-packages entries and ``conda-meta`` (all that may not change).

        The big hard-linked trees (numpy, scipy, ...) are left out: no scenario
        writes there and hashing them would cost a second per call.
        """
        site = self.prefix / SITE
        entries = [site / name for name in sorted(self.image_entries)]
        meta = self.prefix / "conda-meta"
        return tree_hash(*entries, *([meta] if meta.is_dir() else []))


def body(text: str) -> list[str]:
    """The plan's lines without the environment header."""
    return text.splitlines()[1:]


def assert_refused_apply_changes_nothing(real: Real, pip: list[str]) -> None:
    """``apply`` of ``pip`` exits 3 (refused); every version and managed byte stays as it was."""
    before, versions = real.managed_hash(), installed_versions(real.prefix)
    applied = real.apply(pip)
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert installed_versions(real.prefix) == versions
    assert real.managed_hash() == before


def held_back_core(change: dict[str, Any]) -> dict[str, Any] | None:
    """A change's ``held_back`` without the optional ``status`` of its holders."""
    held = change.get("held_back")
    if not isinstance(held, dict):
        return None
    by = [{k: v for k, v in h.items() if k != "status"} for h in held.get("by", ())]
    return {**held, "by": by}
