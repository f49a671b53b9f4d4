"""The parts of ``scripts/gpu_check.py``, one module per section and one per shared piece.

Shared: ``wheels`` (installing what is missing from ``gpu-wheels/``), ``plan`` (sizes and step
counts, scaled by ``--cpu``/``--quick``), ``budget`` (each section's share of the wall clock),
``report`` (the markdown report, saved after every case) and ``context`` (what the sections
share, and how one case runs). Sections: ``versions`` (1), ``suites`` (2, the tests), ``steps``
(3), ``passes`` (4), ``poster`` (5) and ``compiled`` (6); ``main`` runs them.

No module imports more than the standard library when it is imported: torch, the project and
the packages the wheels provide are imported where they are used, so that ``main`` can install
the wheels first, and so that a failed install fails the sections that need it, not the check.
Imported as ``scripts.device_check`` with the repository root on sys.path.
"""

from pathlib import Path

#: The checkout the check runs from, and its scripts folder.
ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
