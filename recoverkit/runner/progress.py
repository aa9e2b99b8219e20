"""Training progress: a rich progress bar on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["LogProgress", "RichProgress", "make_progress"]

logger = logging.getLogger(__name__)


class LogProgress:
    """Report progress as log lines: one every ``every_n_batches`` batches and one per epoch.

    Used when the output is not a terminal (CI logs, Slurm files), where a
    progress bar would write one line per refresh.
    """

    def __init__(self, every_n_batches: int = 50) -> None:
        self.every_n_batches = max(1, int(every_n_batches))
        self._epoch = 0
        self._total = 0
        self._started = 0.0

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def start_epoch(self, epoch: int, last_epoch: int, total_batches: int, done_batches: int) -> None:
        """Begin reporting an epoch of ``total_batches``, ``done_batches`` of them already done."""
        self._epoch = epoch
        self._total = total_batches
        self._started = time.monotonic()
        logger.info("Epoch %d/%d: %d batches (%d already done)", epoch, last_epoch, total_batches, done_batches)

    def advance(self, batch: int, step: int, running_loss: float) -> None:
        """Report that batch number ``batch`` (1-based) of the epoch finished."""
        if batch % self.every_n_batches == 0 or batch == self._total:
            logger.info(
                "Epoch %d batch %d/%d step %d: train_loss %.4f",
                self._epoch,
                batch,
                self._total,
                step,
                running_loss,
            )

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        """Report the metrics of the finished epoch."""
        shown = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if isinstance(value, float))
        logger.info("Epoch %d done in %.1f s: %s", self._epoch, time.monotonic() - self._started, shown)


class RichProgress(LogProgress):
    """A rich progress bar over epochs and the batches of the current epoch, with the running loss."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._epochs_task: Any = None
        self._batches_task: Any = None

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._progress.__exit__(*exc_info)

    def start_epoch(self, epoch: int, last_epoch: int, total_batches: int, done_batches: int) -> None:
        """Show epoch ``epoch`` of ``last_epoch`` and reset the batch bar."""
        self._epoch = epoch
        self._total = total_batches
        if self._epochs_task is None:
            self._epochs_task = self._progress.add_task("epochs", total=last_epoch, completed=epoch - 1, loss="")
        else:
            self._progress.update(self._epochs_task, completed=epoch - 1)
        if self._batches_task is not None:
            self._progress.remove_task(self._batches_task)
        self._batches_task = self._progress.add_task(
            f"epoch {epoch}", total=total_batches, completed=done_batches, loss=""
        )

    def advance(self, batch: int, step: int, running_loss: float) -> None:
        """Move the batch bar to ``batch`` and show the running loss."""
        self._progress.update(self._batches_task, completed=batch, loss=f"loss {running_loss:.4f}")

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        """Move the epoch bar and print the epoch's metrics above the bars."""
        self._progress.update(self._epochs_task, completed=self._epoch)
        shown = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if isinstance(value, float))
        self._progress.console.print(f"epoch {self._epoch}: {shown}")


def make_progress(every_n_batches: int = 50) -> LogProgress:
    """Return a progress bar if stderr is a terminal, else periodic log lines."""
    if sys.stderr.isatty():
        return RichProgress()
    return LogProgress(every_n_batches)
