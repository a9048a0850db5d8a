"""A progress bar for long CLI work, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    """`bar(done, total)` redraws; `bar.finish()` ends the line. Silent when not on a tty."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = int(self.width * min(done, total) / total)
        bar = "█" * filled + "░" * (self.width - filled)
        self.stream.write(f"\r{self.label} {bar} {done}/{total}")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
