"""The markdown report: sections of paragraphs and tables, saved whole after every change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Writes a markdown table from its headers and rows of formatted cells.
Formatter = Callable[[Sequence[str], Sequence[Sequence[object]]], str]


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table of already formatted cells (used only if bench_render cannot load)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


@dataclass
class Table:
    """A markdown table filled case by case, so that a partial one can be written."""

    headers: list[str]
    rows: list[list[object]] = field(default_factory=list)
    formatter: Formatter = plain_table

    def render(self) -> str:
        # Errors may hold '|' or newlines: keep them inside their cell.
        rows = [[clean_cell(v) for v in row] for row in self.rows]
        return self.formatter(self.headers, rows)


def clean_cell(value: object) -> object:
    """``value``, or its text with the characters that would break a markdown row replaced."""
    if isinstance(value, str):
        return value.replace("|", "/").replace("\n", " ")[:300]
    return value


@dataclass
class Section:
    """One section of the report: paragraphs and tables, in order, and how it ended."""

    title: str
    parts: list[str | Table] = field(default_factory=list)
    status: str = "running"
    seconds: float = 0.0

    def say(self, text: str) -> None:
        self.parts.append(text)

    def table(self, headers: list[str], formatter: Formatter) -> Table:
        table = Table(headers, formatter=formatter)
        self.parts.append(table)
        return table

    def render(self) -> str:
        body = [p.render() if isinstance(p, Table) else p for p in self.parts]
        tail = f"_{self.status}, {self.seconds:.1f} s_"
        return "\n\n".join([f"## {self.title}", *body, tail])


@dataclass
class Report:
    """The markdown file: a heading and the sections; saved whole after every change."""

    path: Path
    heading: str
    sections: list[Section] = field(default_factory=list)
    summary: str = ""

    def save(self) -> None:
        text = "\n\n".join([self.heading, *(s.render() for s in self.sections)])
        text += f"\n\n{self.summary}\n" if self.summary else "\n"
        partial = self.path.with_suffix(".md.partial")
        partial.write_text(text)
        partial.replace(self.path)


def error_text(error: BaseException) -> str:
    """One line: the exception's type and the start of its message."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message[:240]}"
