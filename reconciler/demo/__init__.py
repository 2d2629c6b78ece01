"""``reconciler demo``: a local stand-in for a managed image, built offline in seconds.

:mod:`reconciler.demo.build` makes a wheelhouse and a conda channel of tiny
packages (:mod:`~reconciler.demo.wheels`, :mod:`~reconciler.demo.conda`), a
prefix that is both a venv and a conda environment standing in for
``/opt/conda`` (:mod:`~reconciler.demo.envs`), and a manifest that adds to it.
The tests and the benchmarks build their fixtures with the same modules. Only
the ``demo`` command imports this package.
"""

__all__: list[str] = []
