"""Every command the README and the docs show is one the command line takes.

Collected from README.md and docs/**/*.md: each command line of a fenced code block (``bash``,
``sh``, ``console`` or unmarked; in a ``console`` block only the ``$ `` lines) that runs
``python scripts/X.py``, ``python -m scripts.X``, ``tiledream`` (``tiledream plan`` too),
``tiledream-plan``, ``tiledream-layers`` or ``make TARGET``: ``\\`` continuations are joined,
the shell's quoting is undone (shlex), a ``# comment`` is dropped, and so is what launches the
command (``VAR=value``, ``cd DIR &&``, ``srun``, ``timeout N``, ``torchrun --options``,
``.venv/bin/``).

Each is checked in this process (seconds, not a process per command), as its command line
takes it:

- a render (``scripts/render.py``, ``tiledream``), a plan or a layer listing: Hydra's own parser
  reads the arguments, the overrides are composed with Hydra (the first and the last job of a
  ``-m`` sweep), the values are checked as the command line checks them before a render
  (``check_values``), and the parts are built and checked as a render does before it allocates
  anything (``render.run.prepare``: the objective's layers and channels in the model, the
  initial image, an output that holds the canvas, tiles that fit it). A model whose weights are
  not on this machine (offline) is stood in for by one that has every layer, so all but the
  layer names is still checked, and so is an objective built with that model (CLIP's
  ``clip_text`` embeds its prompt with it);
- another script: it exists, and its own argparse parser accepts the arguments (the parser's
  ``parse_args`` stops the script there: nothing runs);
- ``tiledream join FOLDER``: its parser accepts the arguments;
- ``make TARGET``: the Makefile has the target; ``ARGS=`` of ``make render`` is a render's.

Placeholders. A command may name the reader's own files and folders: ``photo.jpg`` and
``astronaut.png`` are the reader's pictures and ``clip.mp4`` the reader's video, given here by
files of the repository (``PICTURES``); a folder a command writes or reads (``RUN_DIR``, ``DIR``, a
``multirun/...`` folder) is taken as written, and a shell variable (``$NAME``) by its name. A
command that needs any other file to exist is a mistake of the docs.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

# Hydra's own command-line parser and sweep expansion: what @hydra.main and its basic launcher
# do with a render's arguments.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser

from render import cli
from render.config import build, check_values, compose_config
from render.errors import UserError
from render.run import prepare

#: The reader's own pictures in the docs' commands, and the repository's pictures that stand in.
PICTURES = {
    "photo.jpg": "docs/images/goldfish.jpg",
    "astronaut.png": "docs/images/goldfish.jpg",
    "clip.mp4": "docs/images/video_pan_input.mp4",
}
#: The command lines that render, plan or list layers: the Hydra command line's.
HYDRA_COMMANDS = {
    "scripts/render.py": "render",
    "tiledream": "render",
    "scripts/plan.py": "plan",
    "tiledream-plan": "plan",
    "scripts/layers.py": "layers",
    "tiledream-layers": "layers",
}
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w-]*)")


@dataclass(frozen=True)
class Command:
    """A documented command: where it is, and its program and arguments as the shell gives them."""

    where: str
    program: str
    args: tuple[str, ...]


def documents() -> list[Path]:
    """README.md and every page of the docs."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shell_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, command line)`` of the shell code blocks of ``path``, continuations
    joined; in a console block, the ``$ `` lines without their prompt."""
    fence, language, pending, start = "", "", "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        opened = FENCE.match(line)
        if not fence:
            if opened:
                fence, language = opened[1], opened[2]
            continue
        if line.strip().startswith(fence):
            fence = ""
            continue
        if language not in SHELL_BLOCKS:
            continue
        text = line.strip()
        if language == "console":
            if not text.startswith("$ ") and not pending:
                continue
            text = text.removeprefix("$ ")
        start = start if pending else number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        yield start, pending + text
        pending = ""


def launched(words: list[str]) -> list[str]:
    """The command itself, without what launches it (variables, ``cd``, srun, timeout, ...)."""
    while words:
        first = words[0]
        if re.fullmatch(r"\w+=.*", first):
            words = words[1:]
        elif first == "cd" and "&&" in words:
            words = words[words.index("&&") + 1 :]
        elif first in ("srun", "torchrun"):
            rest = words[1:]
            while rest and rest[0].startswith("-"):
                rest = rest[1:]
            # torchrun runs a script itself.
            words = ["python", *rest] if first == "torchrun" else rest
        elif first == "timeout":
            words = words[2:]
        elif first.startswith(".venv/bin/"):
            words = [first.removeprefix(".venv/bin/"), *words[1:]]
        else:
            return words
    return words


def command(where: str, line: str) -> Command | None:
    """The project's command on ``line``, or None for anything else (pip, an output line)."""
    try:
        words = launched(shlex.split(line, comments=True))
    except ValueError:
        return None  # not shell syntax: an output or a layout listing, not a command
    if not words:
        return None
    program, args = words[0], words[1:]
    if program in ("python", "python3") and args[:1] == ["-m"] and len(args) > 1:
        program, args = args[1], args[2:]
    elif program in ("python", "python3") and args:
        program, args = args[0], args[1:]
    ours = (
        program in HYDRA_COMMANDS
        or program == "make"
        or re.fullmatch(r"scripts/[\w/]+\.py|scripts(\.\w+)+", program) is not None
    )
    return Command(where, program, tuple(args)) if ours else None


def documented() -> list[Command]:
    """Every documented command, each distinct command once (where it is first shown)."""
    found: dict[tuple[str, tuple[str, ...]], Command] = {}
    for path in documents():
        for number, line in shell_lines(path):
            found_command = command(f"{path.relative_to(ROOT)}:{number}", line)
            if found_command is not None:
                # tiledream and scripts/render.py are one command line: checked once.
                kind = HYDRA_COMMANDS.get(found_command.program, found_command.program)
                found.setdefault((kind, found_command.args), found_command)
    return list(found.values())


COMMANDS = documented()


def substituted(word: str) -> str:
    """``word`` with the docs' placeholders given: the reader's pictures, ``$VARIABLES``."""
    for name, stand_in in PICTURES.items():
        word = re.sub(rf"(?<![\w/.]){re.escape(name)}\b", str(ROOT / stand_in), word)
    return re.sub(r"\$\{?(\w+)\}?", r"\1", word)


def jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The overrides of each job to check: one, or the first and last of a sweep."""
    if not multirun:
        return [overrides]
    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    every = [list(job) for batch in batches for job in batch]
    return [every[0], every[-1]] if len(every) > 1 else every


class EveryLayer(dict):
    """The layer table of a model whose weights are not here: every layer, every channel."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> int:
        return 2**31


@dataclass(frozen=True)
class StandIn:
    """A model that has every layer: the rest of a render's checks run without its weights
    (``missing``: the error that building it gave)."""

    missing: str

    def layer_channels(self) -> EveryLayer:
        return EveryLayer()


class StandInObjective:
    """An objective of a stood-in model: one that reads any layer, and none on a photo."""

    photo_layers: frozenset[str] = frozenset()

    def validate(self, channels: EveryLayer) -> None:
        pass


@functools.cache
def model_for(model_node: str) -> Any:
    """The model of a config's ``model`` node (as YAML), built once; offline, a stand-in."""
    from omegaconf import OmegaConf

    try:
        return build(OmegaConf.create(model_node))
    except UserError as error:
        return StandIn(str(error))


def check_render(overrides: list[str], run: str) -> None:
    """Compose ``overrides`` and check them as the command line does before it renders."""
    from omegaconf import OmegaConf

    cfg = compose_config([substituted(o) for o in overrides])
    check_values(cfg)
    if run == "layers":
        return  # it builds the model and lists it; nothing else is read
    model = model_for(OmegaConf.to_yaml(cfg.model))
    prepare(cfg, model, objective_for(cfg, model))


def objective_for(cfg: Any, model: Any) -> Any:
    """The config's objective; a stand-in where building it builds the model whose weights are
    not here (its own keys are still checked as Hydra composes them)."""
    try:
        return build(cfg.objective)
    except UserError as error:
        if isinstance(model, StandIn) and str(error) == model.missing:
            return StandInObjective()
        raise


class Parsed(Exception):
    """Raised by ``parse_args`` once a script's arguments are parsed: the script goes no further."""


def with_its_scripts(path: Path) -> str:
    """The text of a script and of the ``scripts.*`` modules it imports (where its parser may
    be: scripts/gpu_check.py runs scripts/device_check/main.py)."""
    text = path.read_text()
    for module in re.findall(r"^from (scripts\.[\w.]+) import", text, re.MULTILINE):
        text += (ROOT / (module.replace(".", "/") + ".py")).read_text()
    return text


def stop_after_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make argparse raise :class:`Parsed` once it has parsed (what it refuses, it still
    refuses, with its exit status 2)."""
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> argparse.Namespace:
        parse(self, *a, **kw)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)


def parse_only(program: str, args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``program`` (a script path or module) up to its argparse parser, with ``args``."""
    path = ROOT / (program if program.endswith(".py") else program.replace(".", "/") + ".py")
    assert path.is_file(), f"{program}: no such script"
    assert "argparse" in with_its_scripts(path), f"{program} has no argparse parser to check"
    stop_after_parsing(monkeypatch)
    monkeypatch.setattr(sys, "argv", [str(path), *(substituted(a) for a in args)])
    monkeypatch.setattr(sys, "path", list(sys.path))  # scripts put the repository on it
    monkeypatch.chdir(ROOT)
    with pytest.raises(Parsed):
        if program.endswith(".py"):
            runpy.run_path(str(path), run_name="__main__")
        else:
            runpy.run_module(program, run_name="__main__", alter_sys=False)


def make_targets() -> set[str]:
    """The targets the Makefile defines."""
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w.-]+):(?!=)", text, re.MULTILINE))


def test_the_docs_show_commands_of_every_kind():
    programs = {c.program for c in COMMANDS}
    assert {"scripts/render.py", "tiledream", "make", "scripts/gallery.py"} <= programs
    assert any(c.program == "tiledream" and c.args[:1] == ("plan",) for c in COMMANDS)
    assert any(c.program.startswith("scripts.bench.") for c in COMMANDS)
    assert len(COMMANDS) > 40, [c.where for c in COMMANDS]


def test_collection_reads_commands_as_a_shell_does():
    found = command(
        "x",
        "PYTHONPATH=. srun timeout 60 .venv/bin/tiledream plan 'tiling.base_size=[8,8]'  # note",
    )
    assert found == Command("x", "tiledream", ("plan", "tiling.base_size=[8,8]"))
    found = command("x", "torchrun --nnodes=2 --rdzv_endpoint=$HEAD:29500 scripts/render.py a=1")
    assert found == Command("x", "scripts/render.py", ("a=1",))
    assert command("x", "cd /else && python -m scripts.bench.ranks --size 8") == Command(
        "x", "scripts.bench.ranks", ("--size", "8")
    )
    assert command("x", "pip install .") is None
    assert command("x", "error: tiling: tile_size [300, 300] must fit") is None


def test_a_refused_value_fails_the_check():
    with pytest.raises(UserError, match=r"render\.tiles_per_step must be"):
        check_render(["render.tiles_per_step=autoo"], "render")
    with pytest.raises(UserError, match="unknown layer"):
        check_render(["objective.layer=blocks.5.0.bn11"], "render")
    with pytest.raises(UserError, match="must fit in the base size"):
        check_render(["tiling.tile_size=[600,600]"], "render")


@pytest.mark.parametrize("documented_command", COMMANDS, ids=lambda c: c.where)
def test_documented_command_is_accepted(documented_command: Command, monkeypatch) -> None:
    program, args = documented_command.program, list(documented_command.args)
    if program == "make":
        target = args[0] if args else "all"
        assert target in make_targets(), f"make {target}: no such target"
        given = [a.split("=", 1)[1] for a in args[1:] if a.startswith("ARGS=")]
        if target == "render" and given:
            check_render(shlex.split(given[0]), "render")
        return
    run = HYDRA_COMMANDS.get(program)
    if run is None:
        parse_only(program, tuple(args), monkeypatch)
        return
    if run == "render" and args[:1] == ["plan"]:
        run, args = "plan", args[1:]
    if run == "render" and args[:1] == ["join"]:
        # The reader's segment folders: the arguments as join's parser reads them.
        stop_after_parsing(monkeypatch)
        with pytest.raises(Parsed):
            cli.join([substituted(a) for a in args[1:]])
        return
    if run == "render" and args[:1] in (["info"], ["replay"]):
        # A picture of the reader's with its recipe, and for replay overrides on top of it.
        command, picture, *args = args
        assert Path(picture).suffix in {".png", ".tif", ".dzi", ".gif", ".mp4"}, picture
        assert command == "replay" or not args, f"tiledream info takes one file, got {args}"
    if run == "render":
        parsed = get_args_parser().parse_args(args)
        for job in jobs(parsed.overrides, parsed.multirun):
            check_render(job, run)
    else:
        check_render(args, run)


@pytest.mark.slow
def test_the_documented_plan_prints_the_documented_octaves():
    """End to end: the docs' ``tiledream plan`` line through a shell, and its shown output."""
    page = ROOT / "docs" / "guide" / "clusters.md"
    shown = page.read_text()
    line = next(
        text for _, text in shell_lines(page) if text.startswith("tiledream plan 'tiling.base")
    )
    expected = [
        text.removeprefix("$ ")
        for text in shown.splitlines()
        if text.startswith(("octave ", "steps: "))
    ]
    assert len(expected) == 9
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert [text for text in done.stdout.splitlines() if text in expected] == expected
