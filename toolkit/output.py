"""The one place that writes to the terminal: two rich consoles, masking, plain output without a TTY."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
from typing import Any, Callable, Iterator

from toolkit.masking import masker


class Output:
    """Messages go to stderr (so stdout stays clean for data and --json); results and tables to stdout."""

    def __init__(self, *, verbose: bool = False, json_mode: bool = False) -> None:
        self.verbose = verbose
        self.json_mode = json_mode

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
        text.append(masker(message))
        console.print(text)

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

    def show(self, renderable: Any) -> None:
        """A table or panel for people; routed to stderr in --json mode so stdout stays parseable."""
        (self.stderr if self.json_mode else self.stdout).print(renderable)

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
        """Ask only a person (see `interactive`); otherwise the answer is no."""
        if not self.interactive:
            return False
        import click

        return click.confirm(question, default=False, err=True)

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


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
