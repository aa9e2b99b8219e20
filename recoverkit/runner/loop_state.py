"""The training loop's own position, saved with every checkpoint."""

from __future__ import annotations

import copy
import logging
from typing import Any

__all__ = ["LoopState"]

logger = logging.getLogger(__name__)


class LoopState:
    """Where the training loop is: epoch, batches done in it, optimizer steps, running loss.

    An intra-epoch checkpoint stores ``batches_done``, so the resumed run
    skips exactly the batches already trained on. The running loss sums are
    stored too, so the epoch's mean training loss is the same whether or not
    the epoch was interrupted. ``history`` contains one dict of validation
    metrics per finished epoch.

    The file is saved with the default hooks for objects that have
    ``state_dict`` and ``load_state_dict``.

    Example
    -------
    >>> state = LoopState()
    >>> state.start_epoch(1)
    0
    >>> state.record_batch(loss=0.5, num_samples=4)
    >>> restored = LoopState()
    >>> restored.load_state_dict(state.state_dict())
    >>> restored.start_epoch(1), restored.step
    (1, 1)
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.batches_done = 0
        self.step = 0
        self.loss_sum = 0.0
        self.loss_count = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, Any]] = []

    def start_epoch(self, epoch: int) -> int:
        """Enter ``epoch`` and return the number of its batches already done.

        A resumed epoch keeps its position and running loss; any other epoch
        starts at batch 0.
        """
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches_done = 0
            self.loss_sum = 0.0
            self.loss_count = 0
        return self.batches_done

    def record_batch(self, loss: float, num_samples: int) -> None:
        """Count one trained batch and one optimizer step."""
        self.batches_done += 1
        self.step += 1
        self.loss_sum += float(loss) * num_samples
        self.loss_count += num_samples

    @property
    def train_loss(self) -> float:
        """The mean training loss over the samples seen so far in this epoch (NaN before any)."""
        if self.loss_count == 0:
            return float("nan")
        return self.loss_sum / self.loss_count

    def finish_epoch(self, metrics: dict[str, Any]) -> None:
        """Store the finished epoch's metrics in ``history``."""
        self.history = [entry for entry in self.history if entry.get("epoch") != self.epoch]
        self.history.append({"epoch": self.epoch, "step": self.step, **metrics})

    def state_dict(self) -> dict[str, Any]:
        """Return the loop position as plain Python values."""
        return {
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "step": self.step,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "train_seconds": self.train_seconds,
            "history": copy.deepcopy(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the loop position from :meth:`state_dict`'s output."""
        self.epoch = int(state["epoch"])
        self.batches_done = int(state["batches_done"])
        self.step = int(state["step"])
        self.loss_sum = float(state["loss_sum"])
        self.loss_count = int(state["loss_count"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.history = copy.deepcopy(list(state.get("history", [])))

    def __repr__(self) -> str:
        return f"LoopState(epoch={self.epoch}, batches_done={self.batches_done}, step={self.step})"
