"""reconciler: declarative environment manifests for managed Jupyter images."""

__version__ = "0.1.0"
#: This project's distribution name (``reconciler`` on PyPI is an unrelated project). The
#: Studio bootstrap checks it to know that the venv holds this project, not the version alone.
__distribution__ = "env-reconciler"
__all__ = ["__distribution__", "__version__", "load_ipython_extension"]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext reconciler``: registers the ``%reconcile`` magic (see :mod:`reconciler.magic`).

    The magic's module loads only here, so ``import reconciler`` stays cheap.
    """
    from reconciler.magic import load_ipython_extension as load

    load(ipython)
