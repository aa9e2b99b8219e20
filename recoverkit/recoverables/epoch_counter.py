"""An epoch counter that resumes at the right epoch."""

from __future__ import annotations

import logging
import pathlib

from recoverkit.hooks.decorators import mark_as_loader, mark_as_saver, register_checkpoint_hooks

__all__ = ["EpochCounter"]

logger = logging.getLogger(__name__)


@register_checkpoint_hooks
class EpochCounter:
    """Iterate over epochs ``1..limit``, resuming where a checkpoint left off.

    The file format is SpeechBrain's: the current epoch as text. When the
    checkpoint was saved in the middle of an epoch (``end_of_epoch=False``),
    that epoch is not counted as done, so iteration repeats it.

    Parameters
    ----------
    limit : int
        The number of the last epoch.

    Example
    -------
    >>> counter = EpochCounter(3)
    >>> list(counter)
    [1, 2, 3]
    >>> counter.current
    3
    """

    def __init__(self, limit: int) -> None:
        self.current = 0
        self.limit = int(limit)
        if self.limit < 0:
            raise ValueError(f"EpochCounter limit must be >= 0, got {limit!r}.")

    def __iter__(self) -> EpochCounter:
        return self

    def __next__(self) -> int:
        if self.current < self.limit:
            self.current += 1
            logger.info("Going into epoch %d", self.current)
            return self.current
        raise StopIteration

    def __repr__(self) -> str:
        return f"EpochCounter(limit={self.limit}, current={self.current})"

    @mark_as_saver
    def _save(self, path: pathlib.Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(str(self.current))

    @mark_as_loader
    def _recover(self, path: pathlib.Path, end_of_epoch: bool = True) -> None:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
        try:
            saved_value = int(text)
        except ValueError:
            raise ValueError(
                f"Invalid epoch counter file {path}: expected an integer, got {text[:40]!r}."
            ) from None
        self.current = saved_value if end_of_epoch else saved_value - 1
