"""The parts of ``scripts/bench_render.py``, one module each.

``common`` (config, timing and table helpers), ``fit`` (a real render timed step by step, and
the same work without Lightning), ``rss`` (peak RSS of a fresh render process), ``overhead``
(part 1), ``scaling`` (parts 2 and 3: blend cost, scaling with the canvas) and
``side_by_side`` (part 4). Imported as ``scripts.bench`` with the repository root on sys.path.
"""
