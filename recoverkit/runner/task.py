"""The objects a training run needs, already built."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch

from recoverkit.recoverables import EpochCounter

__all__ = ["AveragingSpec", "TrainingTask"]

Metric = Callable[[Any, Any], Any]


@dataclasses.dataclass
class AveragingSpec:
    """Selection of the end-of-epoch checkpoints to average at the end of training.

    Parameters
    ----------
    count : int
        How many checkpoints to average.
    select : str
        ``"last"`` for the newest ``count``, ``"best"`` for the ``count``
        best by the task's ``monitor`` metric.
    recoverable : str
        The recoverable whose parameters are averaged.
    """

    count: int
    select: str = "last"
    recoverable: str = "model"

    def __post_init__(self) -> None:
        if self.select not in ("last", "best"):
            raise ValueError(f"average.select must be 'last' or 'best', got {self.select!r}.")
        if int(self.count) < 1:
            raise ValueError(f"average.count must be >= 1, got {self.count!r}.")
        self.count = int(self.count)


@dataclasses.dataclass
class TrainingTask:
    """Everything a training run trains, validates and tests, already built.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(inputs)`` on the first element of each batch.
    optimizer : torch.optim.Optimizer
        Optimizes ``model``'s parameters.
    loss : callable
        ``loss(outputs, targets)`` returns the batch's mean loss as a scalar tensor.
    train_data, valid_data, test_data : torch.utils.data.Dataset
        Map-style datasets whose samples collate into ``(inputs, targets)``.
        ``valid_data`` and ``test_data`` may be None.
    epochs : EpochCounter
        Counts the epochs; its ``limit`` is the last epoch.
    batch_size : int
        Training batch size.
    seed : int
        Fixes the data order of each epoch (with the epoch number).
    metrics : mapping of str to callable
        ``metric(outputs, targets)`` returns the batch mean. The runner
        averages it over the dataset, weighted by batch size, and reports it
        as ``valid_<name>`` and ``test_<name>``, next to ``valid_loss``.
    lr_scheduler : object, optional
        Stepped once per epoch (after validation) or once per optimizer step,
        as ``lr_scheduler_interval`` sets. ``ReduceLROnPlateau`` gets the
        monitored metric.
    grad_scaler : torch.amp.GradScaler, optional
        Scales the loss for mixed precision.
    eval_batch_size : int, optional
        Batch size of validation and test; ``batch_size`` if omitted.
    max_grad_norm : float, optional
        Clip the gradient norm to this value before each step.
    monitor, monitor_mode : str
        The validation metric that ranks epochs (``min`` or ``max``) for the
        best-epoch report and ``average.select: best``.
    average : AveragingSpec, optional
        Average checkpoints at the end and evaluate the averaged model too.
    device : str
        Where the model and batches live.
    num_workers : int
        DataLoader worker processes.
    collate_fn : callable, optional
        Merges samples into a batch.
    log_every_n_batches : int
        How often plain log lines report the running loss.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[Any, Any], torch.Tensor]
    train_data: Any
    epochs: EpochCounter
    batch_size: int
    seed: int = 0
    valid_data: Any = None
    test_data: Any = None
    metrics: Mapping[str, Metric] = dataclasses.field(default_factory=dict)
    lr_scheduler: Any = None
    lr_scheduler_interval: str = "epoch"
    grad_scaler: Any = None
    eval_batch_size: int | None = None
    max_grad_norm: float | None = None
    monitor: str = "valid_loss"
    monitor_mode: str = "min"
    average: AveragingSpec | None = None
    device: str = "cpu"
    num_workers: int = 0
    collate_fn: Callable[[list[Any]], Any] | None = None
    log_every_n_batches: int = 50

    def __post_init__(self) -> None:
        if self.lr_scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"lr_scheduler_interval must be 'epoch' or 'step', got {self.lr_scheduler_interval!r}."
            )
        if self.monitor_mode not in ("min", "max"):
            raise ValueError(f"monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}.")
        if not isinstance(self.epochs, EpochCounter):
            self.epochs = EpochCounter(int(self.epochs))
        if isinstance(self.average, Mapping):
            self.average = AveragingSpec(**self.average)

    def is_better(self, value: float, best: float | None) -> bool:
        """Return whether ``value`` of the monitored metric beats ``best``."""
        if best is None:
            return True
        return value < best if self.monitor_mode == "min" else value > best
