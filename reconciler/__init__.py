"""reconciler: declarative environment manifests for managed Jupyter images."""

__version__ = "0.1.0"
__all__ = ["__version__"]
