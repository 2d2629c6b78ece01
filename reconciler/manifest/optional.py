"""The optional parts of an environment: how to create it, and its Jupyter kernel.

Importable as :mod:`reconciler.manifest.model` names (``model.Create``,
``model.Kernel``). They live here because a class costs instructions to define at import (a value
class ~0.2 M, a frozen dataclass ~4.5 M on Python 3.11), and most manifests use
neither: their loads, plans and applies never build these classes.
"""

from __future__ import annotations

from reconciler.values import value

__all__ = ["Create", "Kernel"]


@value
class Create:
    """How to create a missing environment: a conda env (``python``) or a venv (``venv``)."""

    python: str | None = None
    venv: str | None = None


@value
class Kernel:
    """A Jupyter kernelspec to register for the environment."""

    name: str
    display_name: str
