"""A per-epoch progress bar (rich) that falls back to log lines when stderr is not a terminal."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)


class EpochProgress:
    def __init__(self, title: str, epochs: int):
        self.title = title
        self.epochs = epochs
        self.done = 0
        self._progress = None
        self._task = None

    def __enter__(self) -> EpochProgress:
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("epoch {task.completed}/{task.total}"),
                TextColumn("{task.fields[loss]}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=self.epochs, loss="")
        return self

    def epoch_done(self, loss: float) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, loss=f"loss {loss:.4f}")
        log.info("%s: epoch %d/%d loss %.4f", self.title, self.done, self.epochs, loss)

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()
