"""Every number a user can give is checked before a render starts: one line, exit status 2."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing

import pytest
from conftest import RENDER, ROOT, tiledream

from render.config import SCHEMAS, TRAINER_RULES, RenderConfig
from render.errors import UserError
from render.rules import MAX_SEED, Number
from render.schedule import step_generator

# Keys where -1 is a valid value: a value that breaks their rule instead.
BAD = {
    "param.decay": "nan",
    "transforms.angles": "[nan]",
    "objective.vector": "[nan]",
    "video.rotate": "nan",
    "video.drift": "[nan]",
}


def numeric_fields(schema: type, prefix: str) -> list[tuple[str, str]]:
    """``(key, type)`` of every number or list of numbers in ``schema``, nested ones included."""
    found = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found += numeric_fields(hint, f"{prefix}{f.name}.")
        elif re.search(r"\b(int|float)\b", str(hint)):
            found.append((f"{prefix}{f.name}", str(hint)))
    return found


def schema_cases() -> list[tuple[list[str], str, str]]:
    """``(group option overrides, key, bad value)`` for every numeric key of the schema."""
    cases = [([], key, hint) for key, hint in numeric_fields(RenderConfig, "")]
    for group, options in SCHEMAS.items():
        for name, schema in options.items():
            cases += [([f"{group}={name}"], k, h) for k, h in numeric_fields(schema, f"{group}.")]
    cases += [([], key, "int") for key in TRAINER_RULES]
    return [
        (option, key, BAD.get(key, "[-1]" if "list" in hint else "-1"))
        for option, key, hint in cases
    ]


CASES = schema_cases()


def test_the_walk_covers_the_schema():
    keys = {key for _, key, _ in CASES}
    assert {"optim.lr", "seed", "render.blend_every", "checkpoint.every_n_steps"} <= keys
    assert {"checkpoint.keep", "tiling.tile_overlap", "trainer.max_steps"} <= keys
    assert set(BAD) <= keys, "a bad value for a key that is gone"


@pytest.mark.parametrize(
    ("option", "key", "bad"),
    [pytest.param(o, k, b, id=" ".join([*o, k])) for o, k, b in CASES],
)
def test_a_bad_number_is_one_line_and_exit_2(tmp_path, option, key, bad):
    # The command line's entry point in this process (a fraction of a second each, so every key
    # runs with the fast tests); test_a_bad_number_is_reported_before_torch_is_imported runs
    # one in a process of its own.
    result = tiledream(*option, f"{key}={bad}", f"hydra.run.dir={tmp_path}", check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    # The key (its first element for a list), the rule and the value.
    expected = rf"error: {re.escape(key)}(\[0\])? must be .+, got (-1|-1\.0|nan)"
    assert re.fullmatch(expected, errors[0])


def test_a_bad_number_is_reported_before_torch_is_imported(tmp_path):
    # The check comes first so that a mistake costs a second, not torch's import (seconds).
    result = subprocess.run(
        [sys.executable, "-X", "importtime", RENDER, "optim.lr=-1", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "error: optim.lr must be a finite number > 0, got -1.0" in result.stderr
    imported = re.findall(r"^import time:.*\| +(\S+)$", result.stderr, re.MULTILINE)
    assert "hydra" in imported and "torch" not in imported


def test_the_message_names_the_key_the_rule_and_the_value():
    with pytest.raises(UserError, match=r"^optim.lr must be a finite number > 0, got -1.0$"):
        Number(above=0).check("optim.lr", -1.0)
    with pytest.raises(UserError, match=r"must be a finite number in \[0, 0.5\), got nan"):
        Number(at_least=0, below=0.5).check("render.octave_headroom", float("nan"))
    with pytest.raises(UserError, match=r"must be an integer >= 1 \(a note\), got 2.5"):
        Number(integer=True, at_least=1, note="a note").check("key", 2.5)
    Number(integer=True, at_least=1).check("an optional key", None)


def test_the_largest_seed_drives_every_generator():
    # Lightning seeds numpy with it; the per-step generators reduce it to 64 bits.
    assert step_generator(MAX_SEED, 10**6, 7).initial_seed() < 2**64
