"""What a render would take, without rendering: ``python scripts/plan.py [key=value ...]``.

The same as the installed ``tiledream plan`` (``render.cli.plan``), run from a checkout. Takes
the overrides of scripts/render.py; prints the octaves (canvas, tiles, steps), memory per rank,
disk for the outputs and the expected time on this machine. A mistake in the configuration
ends with one line naming it and exit status 2.
"""

import os
import sys

# This folder holds render.py, which would shadow the ``render`` package: import the package.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

from render.cli import plan  # noqa: E402

if __name__ == "__main__":
    sys.exit(plan())
