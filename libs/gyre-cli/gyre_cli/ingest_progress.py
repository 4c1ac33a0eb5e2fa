"""`gyre ingest`'s progress bar on stderr: rich's Progress, shown on a terminal only.

Where stderr is not a terminal (a pipe, a log file, CI) nothing is drawn: the run's output stays the
summary on stdout, one fact a line. On a terminal rich fits the bar to the terminal's width, keeps the
elapsed time ticking while verdicts are awaited, and hides the cursor until the run ends.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

BAR_WIDTH = 28
REFRESHES_PER_SECOND = 10
SETTLED = "{task.completed}/{task.total} settled, {task.fields[submitted]} submitted, {task.fields[failed]} failed"


class ProgressBar:
    """Documents settled of the total, with how many were submitted and how many failed so far."""

    def __init__(self, total: int, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        stream = stream or sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self.submitted = 0
        self.failed = 0
        self._progress = Progress(
            BarColumn(bar_width=BAR_WIDTH),
            TextColumn(SETTLED),
            TimeElapsedColumn(),
            console=Console(file=stream, force_terminal=self.enabled),
            disable=not self.enabled,
            refresh_per_second=REFRESHES_PER_SECOND,
        )
        self._task = self._progress.add_task("ingest", total=total, submitted=0, failed=0)
        self._started = False
        self._closed = False

    def start(self) -> None:
        """Show the bar (a no-op when disabled or already shown); the run calls it, then close() when it ends."""
        if not self._started:
            self._started = True
            self._progress.start()

    def update(self, *, done: int = 0, submitted: int = 0, failed: int = 0) -> None:
        self.submitted += submitted
        self.failed += failed
        self.start()
        self._progress.update(self._task, advance=done, submitted=self.submitted, failed=self.failed)

    def close(self) -> None:
        """Draw the last state and leave the cursor on a fresh line, shown again; idempotent."""
        if not self._closed:
            self._closed = True
            self.start()
            self._progress.stop()
