"""A sweep's pictures as a captioned contact sheet and a web page.

    python scripts/gallery.py DIR     # DIR: a multirun folder (python scripts/render.py -m ...)

Writes DIR/gallery.png and DIR/gallery.html (``render.gallery``; ``+gallery=true`` on the
multirun does the same at its end). A missing or empty DIR ends with one ``error:`` line, exit 2.
"""

import argparse
import os
import sys
from pathlib import Path

# This folder holds render.py, which would shadow the ``render`` package: import the package.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

from render.errors import UserError  # noqa: E402
from render.gallery import write_gallery  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Write the gallery of the multirun folder given on the command line; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a multirun folder (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    try:
        for path in write_gallery(args.dir):
            print(path)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
