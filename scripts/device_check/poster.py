"""Section 5: the largest poster the section's share allows, end to end through
``scripts/render.py`` (``scripts/bench/poster.py`` sizes, runs and reads it)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from scripts.device_check import ROOT, SCRIPTS
from scripts.device_check.budget import Clock
from scripts.device_check.context import Context
from scripts.device_check.report import Section


def poster_overrides(ctx: Context, side: int) -> list[str]:
    """``experiment=poster_16k`` at ``side``, deep zoom and TIFF on at any size."""
    given = ctx.args.poster_updates
    updates = ctx.plan.poster_updates if given is None else given
    return [
        "experiment=poster_16k",
        *ctx.plan.overrides,
        f"tiling.base_size=[{side},{side}]",
        *ctx.plan.poster,
        *([f"render.updates_per_tile={updates:g}"] if updates is not None else []),
        "output.deepzoom=true",
        "output.tiff=true",
        "trainer.enable_progress_bar=false",
    ]


def section_poster(ctx: Context, section: Section, clock: Clock) -> None:
    from scripts.bench import poster

    if ctx.pass_rate is None:
        raise RuntimeError("section 4 measured no pass: nothing to size the poster from")
    bench = ctx.need_bench()
    # Room after the render for the levels and the pictures read back.
    seconds = clock.left() - (10 if ctx.plan.cpu else 30)
    configs = {s: bench.compose_config(poster_overrides(ctx, s)) for s in ctx.plan.poster_sizes}
    needs = {s: poster.estimate_s(cfg, ctx.pass_rate) for s, cfg in configs.items()}
    side = poster.choose_size(needs, seconds)
    section.say(
        f"`experiment=poster_16k` at the largest side of {ctx.plan.poster_sizes} whose estimate "
        f"fits {seconds:.0f} s (from section 4's {1e3 * ctx.pass_rate.seconds_per_tile:.3g} ms "
        f"per tile update and {ctx.pass_rate.blend_s_per_mpixel:.3g} s per blended megapixel): "
        + ", ".join(f"{s}: ~{need:.0f} s" for s, need in needs.items())
        + ". Host peak: the render process's own `ru_maxrss` (`os.wait4`). Levels: share of the "
        "windows classified as the class, on `render.tif` read at most "
        f"{poster.LEVELS_MAX} px per side; `poster.jpg` (whole) and `poster-crop.png` (full size, "
        "centre) are in this folder."
    )
    if side is None:
        section.say(f"skipped: the smallest needs ~{min(needs.values()):.0f} s")
        return
    cfg, overrides = configs[side], poster_overrides(ctx, side)
    octaves = poster.poster_octaves(cfg)
    table = section.table(["what", "value"], ctx.formatter())
    table.rows += [
        ["overrides", " ".join(f"`{o}`" for o in overrides)],
        ["canvas", f"{side}x{side}"],
        ["octaves", f"{len(octaves)}: " + ", ".join(f"{s} ({t} tiles)" for s, t, _ in octaves)],
        ["estimate (s)", needs[side]],
    ]
    ctx.report.save()
    with tempfile.TemporaryDirectory(prefix="gpu-check-poster-") as tmp:
        command = [sys.executable, str(SCRIPTS / "render.py"), *overrides, f"hydra.run.dir={tmp}"]
        log_path = ctx.args.out / "poster.log"
        done = poster.run_render(command, log_path, seconds, cwd=ROOT, env=ctx.env)
        log = log_path.read_text(errors="replace")
        peak_host = "n/a" if done.peak_rss_mb is None else f"{done.peak_rss_mb:.0f} MB"
        table.rows += [
            ["exit", done.code],
            ["wall (s)", done.seconds],
            ["tiles per step", poster.tiles_per_step(log)],
            ["peak device memory", poster.peak_cuda_mb(log)],
            ["peak host memory (render process)", peak_host],
            ["outputs", "; ".join(poster.outputs(Path(tmp))) or "none"],
        ]
        ctx.report.save()
        if done.code != "0" or not (Path(tmp) / "render.dzi").is_file():
            raise RuntimeError(f"scripts/render.py: exit {done.code}, see poster.log")
        tile = [int(t) for t in cfg.tiling.tile_size]
        read, levels, written = poster.look(
            Path(tmp) / "render.tif",
            ctx.args.out,
            ctx.model(),
            int(cfg.objective.class_index),
            tile,
            ctx.device(),
        )
    shares = ", ".join(f"{k}x{k}: {100 * v:.0f}%" for k, v in levels.items())
    table.rows += [[f"levels (on {read})", shares], ["copied to --out", "; ".join(written)]]
