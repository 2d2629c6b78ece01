"""The optional parts of an environment: how to create it, and its Jupyter kernel.

Importable as :mod:`reconciler.manifest.model` names (``model.Create``,
``model.Kernel``). They live here because a frozen dataclass costs ~4.5 M instructions
to create at import (Python 3.11: its methods are compiled by ``exec``), and most
manifests use neither: their loads, plans and applies never build these classes.
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
