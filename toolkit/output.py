"""The one place that writes to the terminal: two rich consoles, masking, plain output without a TTY.

Readable at any width: on a terminal, messages wrap at word boundaries under their symbol, and a word longer
than the line (a path) is never broken, the terminal wraps it; tables never cut an identifier (snapshot names,
revision ids, paths, risk words): when they cannot all fit whole, each row becomes a block of `Header: value`
lines. Without a terminal (pipes, CI logs) each message stays one line, for grep."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from toolkit.masking import masker


@dataclass(frozen=True)
class Column:
    """A table column; `identifier`: its cells are names to read and type (never cut, never wrapped)."""

    header: str
    identifier: bool = False


class Output:
    """Messages go to stderr (so stdout stays clean for data and --json); results and tables to stdout."""

    def __init__(self, *, verbose: bool = False, json_mode: bool = False) -> None:
        self.verbose = verbose
        self.json_mode = json_mode
        self.full = False  # --full: long reports in full, not their summary (-v too)

    # rich is imported on first use: commands that only stream a child's output never pay for it.
    @functools.cached_property
    def stdout(self) -> Any:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)

    @functools.cached_property
    def stderr(self) -> Any:
        from rich.console import Console

        return Console(stderr=True, highlight=False, soft_wrap=True)

    def _line(self, console: Any, symbol: str, message: str, style: str) -> None:
        from rich.text import Text

        text = Text(f"{symbol} ", style=style)
        text.append(self._wrapped(console, masker(message), indent=2))
        console.print(text)

    @staticmethod
    def _wrapped(console: Any, text: str, *, indent: int) -> str:
        """On a terminal, `text` wrapped at word boundaries to the console's width (lines after the first
        indented); words longer than a line stay whole. Elsewhere, as it is."""
        if not console.is_terminal:
            return text
        lines = []
        for paragraph in text.split("\n"):  # each of its own lines, its own leading spaces kept
            lead = paragraph[:len(paragraph) - len(paragraph.lstrip())]
            width = max(console.width - indent - len(lead), 20)
            lines += [lead + line for line in textwrap.wrap(paragraph.lstrip(), width, break_long_words=False,
                                                            break_on_hyphens=False)] or [""]
        return f"\n{' ' * indent}".join(lines)

    def info(self, message: str) -> None:
        self._line(self.stderr, "•", message, "cyan")

    def success(self, message: str) -> None:
        self._line(self.stderr if self.json_mode else self.stdout, "✓", message, "bold green")

    def warn(self, message: str) -> None:
        self._line(self.stderr, "!", message, "bold yellow")

    def error(self, message: str, hint: str | None = None, detail: str | None = None) -> None:
        self._line(self.stderr, "✗", message, "bold red")
        if detail:
            from rich.text import Text

            self.stderr.print(Text(masker(detail.rstrip("\n"))), style="red")
        if hint:
            self._line(self.stderr, " ", hint, "yellow")

    def debug(self, message: str) -> None:
        if self.verbose:
            self._line(self.stderr, "·", message, "dim")

    def table(self, title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[Any]], *,
              bare: bool = False) -> None:
        """A table for people: cells are plain strings, or `styled(...)` ones; `bare`: no headers, no lines.
        Where the identifiers cannot all be shown whole at this width, each row is shown as a block instead: its
        first cell, then one `Header: value` line per other cell."""
        from rich.table import Table
        from rich.text import Text

        console = self.stderr if self.json_mode else self.stdout
        cells = [[_text(cell) for cell in row] for row in rows]
        table = Table(title=Text(title) if title else None, title_justify="left", show_header=not bare,
                      **({"box": None, "pad_edge": False} if bare else {}))
        for column in columns:
            table.add_column(column.header, no_wrap=column.identifier)
        for row in cells:
            table.add_row(*row)
        rendered = console.render_lines(table, console.options.update(height=None), pad=False, new_lines=True)
        if _shows_whole(rendered, columns, cells):
            from rich.segment import Segments

            console.print(Segments(segment for line in rendered for segment in line))  # rendered once
            return
        if title:
            console.print(Text(title, style="italic"))
        for row in cells:
            console.print(Text(row[0].plain, style="bold"))
            for column, cell in zip(columns[1:], row[1:]):
                if not cell.plain:
                    continue
                line = Text(f"  {column.header}: " if column.header else "  ")
                line.append(self._wrapped(console, cell.plain, indent=4 if column.header else 2), style=cell.style)
                console.print(line)

    def data(self, payload: Any) -> None:
        """Machine-readable output: JSON on stdout (dataclasses as objects), masked like everything else."""
        sys.stdout.write(masker(json.dumps(payload, indent=2, default=_plain)) + "\n")
        sys.stdout.flush()

    def emit(self, payload: Any, view: Callable[[], None]) -> None:
        """A command's result: with --json the payload as one JSON document, otherwise the rich view."""
        if self.json_mode:
            self.data(payload)
        else:
            view()

    @property
    def interactive(self) -> bool:
        """A person can answer: stdin and stderr are terminals and --json is off."""
        return not self.json_mode and sys.stdin.isatty() and sys.stderr.isatty()

    def confirm(self, question: str) -> bool:
        """Ask only a person (see `interactive`); otherwise the answer is no. Ctrl-C raises KeyboardInterrupt."""
        if not self.interactive:
            return False
        import click

        try:
            return click.confirm(question, default=False, err=True)
        except click.Abort:  # Ctrl-C (or end of input) at the question: the caller says what was left undone
            raise KeyboardInterrupt from None

    def raw(self, chunk: bytes, *, stderr: bool = False) -> None:
        """A child process's output, passed through as it arrives (masked, no markup)."""
        stream = sys.stderr if stderr or self.json_mode else sys.stdout
        stream.write(masker(chunk.decode("utf-8", "replace")))
        stream.flush()

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner on a terminal; one plain line otherwise (CI logs, pipes)."""
        if self.stderr.is_terminal:
            with self.stderr.status(masker(message)):
                yield
        else:
            self._line(self.stderr, "…", message, "cyan")
            yield


def styled(text: str, style: str) -> Any:
    """A table cell in one style (its text is never read as markup)."""
    from rich.text import Text

    return Text(masker(text), style=style)


def _text(cell: Any) -> Any:
    from rich.text import Text

    return cell if isinstance(cell, Text) else Text(masker(str(cell)))


def _shows_whole(lines: list, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> bool:
    """Whether the rendered table (its lines of segments) shows every word of every cell whole (rich cuts a word
    with an ellipsis, or folds it, where a column is too narrow), and each identifier on one line."""
    import re

    rendered = ["".join(segment.text for segment in line) for line in lines]
    shown = {word for line in rendered for word in re.split(r"[\s│┃]+", line)}
    if any(word not in shown for row in rows for cell in row for word in cell.plain.split()):
        return False
    spaced = {cell.plain for row in rows for column, cell in zip(columns, row)
              if column.identifier and " " in cell.plain}
    return all(any(identifier in line for line in rendered) for identifier in spaced)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
