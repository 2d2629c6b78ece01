"""``python -m bench.profiled OUT [reconciler arguments]``: reconciler's ``main`` under
cProfile, the stats written to ``OUT``, exiting with its code.

The console script (and ``python -m reconciler``) ends its process with ``os._exit``
once its work is done (:func:`reconciler.entry.run`), so ``python -m cProfile -m
reconciler`` never writes its stats. This runs :func:`reconciler.entry.main` instead,
with the cyclic collector off as the console script runs it, and returns normally.
"""

from __future__ import annotations

import cProfile
import gc
import sys


def main(argv: list[str]) -> int:
    out, *args = argv
    profile = cProfile.Profile()
    gc.disable()
    profile.enable()
    try:
        from reconciler.entry import main as reconciler_main

        return reconciler_main(args)
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
