"""Judge a run's render by the network that made it and by one that never rendered it.

    python scripts/evaluate.py RUN_DIR [RUN_DIR ...] [--json]

RUN_DIR is the folder of a finished render (hydra.run.dir); its render.png and the recipe it
carries give the picture, the class, the tiles and the model (``render.evaluation``). Prints,
for each run, the share of windows classified as their class at every level (the whole image,
2x2, 4x4, ... down to about one tile) by the network that rendered it and by the judge,
EfficientNet-Lite2, which never rendered (transferability: for class renders,
``objective=class_logit``, and layouts of classes, ``interpolate``/``atlas``/``mask`` of class
logits, where a window's class is the one the objective weighs most there); the finest-octave
detail (RMS of what a 2x down-and-up resample removes); the seam ratio at the run's tile grid
(1: no seam). ``--json``: one JSON document, a list with one object per run. A folder without a
render.png ends with one ``error:`` line, exit 2.
"""

from __future__ import annotations

import os
import sys

# scripts/render.py is named like the package: import the package, not that file, and the
# package of this checkout (the repository root).
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != SCRIPTS]
sys.path.insert(0, os.path.dirname(SCRIPTS))

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from render.errors import UserError  # noqa: E402
from render.evaluation import evaluate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Evaluate the runs given on the command line; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    found = []
    try:
        for run_dir in args.runs:
            evaluation = evaluate(run_dir)
            found.append(evaluation)
            if not args.json:
                print("\n".join(evaluation.lines()), flush=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([e.as_dict() for e in found], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
