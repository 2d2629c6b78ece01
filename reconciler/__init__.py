"""reconciler: declarative environment manifests for managed Jupyter images."""

__version__ = "0.1.0"
__all__ = ["__version__", "load_ipython_extension"]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext reconciler``: registers the ``%reconcile`` magic (see :mod:`reconciler.magic`).

    The magic's module loads only here, so ``import reconciler`` stays cheap.
    """
    from reconciler.magic import load_ipython_extension as load

    load(ipython)
