"""reconciler: declarative environment manifests for managed Jupyter images."""

__version__ = "0.1.0"
#: This project's distribution name (``reconciler`` on PyPI is an unrelated project). The
#: Studio bootstrap checks it to know that the venv holds this project, not the version alone.
__distribution__ = "env-reconciler"
__all__ = ["__distribution__", "__version__"]
