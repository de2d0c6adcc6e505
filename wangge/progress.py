"""Progress of long work on standard error: rich bars on a terminal, plain lines elsewhere.

Library code knows nothing of this module: it takes optional callbacks and calls them as it
goes, in one of two shapes, which :class:`ProgressReporter` provides as bound methods:

* ``stage(message)`` (``Callable[[str], None]``): a step begins ("segmenting", "fitting on
  ...", a fetch-e5 stage). On a terminal the current step shows with a spinner and the time it
  has taken, and each finished step stays as a line; elsewhere each step is a line.
* ``count(what, done, total)`` (``Callable[[str, int, int], None]``): ``done`` of ``total``
  items of the work named ``what`` are finished. On a terminal ``what`` gets a bar; elsewhere a
  line each time another tenth is done, so a log file gets ten lines, not one per message.
  :meth:`ProgressReporter.counter` binds ``what`` for callbacks shaped ``(done, total)``.

Plain lines carry no colour or cursor control characters: a log file or a CI job reads them
as they are. Whether standard error is a terminal is decided by rich (``TERM=dumb`` counts as
no terminal; ``FORCE_COLOR`` or ``TTY_COMPATIBLE=1`` force one).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

#: Plain output prints a count each time another 1/PLAIN_STEPS of the work is done.
PLAIN_STEPS = 10


class ProgressReporter:
    """Reports stages and counts to standard error (or ``stream``) while it is open.

    ``live`` forces bars (``True``) or plain lines (``False``); by default bars are drawn
    only when the stream is a terminal. Use it as a context manager, so that the bars are
    closed (and the last stage line printed) however the work ends.
    """

    def __init__(self, *, stream: TextIO | None = None, live: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        console = Console(file=self._stream, force_terminal=live)
        if live is None:
            live = console.is_terminal and not console.is_dumb_terminal
        self._bars: Progress | None = None
        if live:
            self._bars = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[amount]}"),  # done/total of a count, blank for a stage
                TimeElapsedColumn(),
                console=console,
            )
        self._tasks: dict[str, TaskID] = {}
        self._printed_step: dict[str, int] = {}
        self._stage: tuple[TaskID, str] | None = None

    def __enter__(self) -> ProgressReporter:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bars is not None:
            self._end_stage()
            self._bars.stop()

    def stage(self, message: str) -> None:
        """A step of the work begins."""
        if self._bars is None:
            self._line(message)
            return
        self._end_stage()
        task = self._bars.add_task(message, total=None, amount="")
        self._stage = (task, message)

    def count(self, what: str, done: int, total: int) -> None:
        """``done`` of ``total`` items of ``what`` are finished."""
        if self._bars is None:
            step = PLAIN_STEPS * done // total if total else PLAIN_STEPS
            if step > self._printed_step.get(what, 0):
                self._printed_step[what] = step
                share = f" ({done / total:.0%})" if total else ""
                self._line(f"{what}: {done}/{total}{share}")
            return
        task = self._tasks.get(what)
        if task is None:
            task = self._tasks[what] = self._bars.add_task(what, total=total, amount="")
        self._bars.update(task, completed=done, total=total, amount=f"{done}/{total}")

    def counter(self, what: str) -> Callable[[int, int], None]:
        """:meth:`count` for ``what``, as a ``(done, total)`` callback."""
        return partial(self.count, what)

    def _end_stage(self) -> None:
        """On a terminal, the finished stage leaves its spinner for a plain line."""
        if self._bars is not None and self._stage is not None:
            task, message = self._stage
            self._bars.remove_task(task)
            self._bars.console.print(message, style="dim", highlight=False, markup=False)
            self._stage = None

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
