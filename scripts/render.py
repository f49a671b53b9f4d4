"""Render a feature visualisation: ``python scripts/render.py [key=value ...]``.

The same as the installed ``tiledream`` command (``render.cli.main``), run from a checkout.
Writes render.png, render_tiles.png, progress.gif and the metrics into Hydra's run directory
(above output.large_pixels also render.tif, render.dzi + render_files/ and viewer.html).
A mistake in the configuration ends with one line naming it and exit status 2.
"""

import os
import sys

# This file is named like the package it drives: import the package, not this file.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

from render.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
