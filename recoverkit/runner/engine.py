"""The generic training loop: recover, train, validate, checkpoint on schedule, test."""

from __future__ import annotations

import copy
import logging
import math
import signal
import time
from collections.abc import Callable
from typing import Any

import torch

from recoverkit import distributed
from recoverkit.checkpointer import Checkpointer
from recoverkit.config.schedule import SaveSchedule
from recoverkit.errors import TrainingInterruptedError
from recoverkit.recoverables import RNGState
from recoverkit.runner.data import build_loader
from recoverkit.runner.distributed import agree_to_save, build_distributed_loader, wrap_model
from recoverkit.runner.loop_state import LoopState
from recoverkit.runner.progress import LogProgress, make_progress
from recoverkit.runner.signals import SignalWatcher
from recoverkit.runner.task import TrainingTask
from recoverkit.storage.layout import Checkpoint
from recoverkit.storage.meta import END_OF_EPOCH_KEY

__all__ = ["Trainer", "is_end_of_epoch", "resume_order"]

logger = logging.getLogger(__name__)

Retention = Callable[[Checkpointer, Checkpoint], None]


def is_end_of_epoch(checkpoint: Checkpoint) -> bool:
    """Return whether ``checkpoint`` was saved at the end of an epoch."""
    return bool(checkpoint.meta.get(END_OF_EPOCH_KEY, True))


def resume_order(checkpoint: Checkpoint) -> tuple[int, bool, float]:
    """Rank checkpoints for resuming: most optimizer steps first, end-of-epoch before intra-epoch.

    Wall-clock order alone is not enough, because a checkpoint saved after
    the last step of an epoch and the end-of-epoch checkpoint that follows
    it hold the same step, and only the second holds the validation metrics.
    """
    meta = checkpoint.meta
    return (int(meta.get("step", -1)), is_end_of_epoch(checkpoint), float(meta.get("unixtime", 0.0)))


class Trainer:
    """Train a :class:`TrainingTask`, saving checkpoints on a schedule, and resume exactly.

    The trainer registers with the checkpointer every object that an exact
    resume needs and that the checkpointer does not hold yet: the model,
    optimizer, LR scheduler, gradient scaler, epoch counter, the random
    generator states (:class:`RNGState`) and the loop position
    (:class:`LoopState`).

    Parameters
    ----------
    task : TrainingTask
        The built objects to train.
    checkpointer : Checkpointer
        Saves into the run's checkpoints folder.
    schedule : SaveSchedule, optional
        When to save; by default at the end of every epoch and on SIGTERM
        and SIGINT. The end of the last epoch is always saved.
    retention : callable, optional
        Called as ``retention(checkpointer, newest)`` after each end-of-epoch
        save to delete end-of-epoch checkpoints the run no longer needs. It
        must not delete ``newest``. By default every end-of-epoch checkpoint
        is kept.
    progress : LogProgress, optional
        Reports progress; a progress bar on a terminal, log lines otherwise.
    """

    def __init__(
        self,
        task: TrainingTask,
        checkpointer: Checkpointer,
        schedule: SaveSchedule | None = None,
        retention: Retention | None = None,
        progress: LogProgress | None = None,
    ) -> None:
        self.task = task
        self.checkpointer = checkpointer
        self.schedule = schedule if schedule is not None else SaveSchedule(signals=("SIGTERM", "SIGINT"))
        self.retention = retention
        self.progress = progress if progress is not None else make_progress(task.log_every_n_batches)
        self.loop_state = LoopState()
        self.resumed_from: Checkpoint | None = None
        self._saving = False
        self._last_saved: tuple[Checkpoint, int] | None = None
        self._last_save_time = time.monotonic()
        self._timer_start = time.monotonic()
        self._register_recoverables()
        # Under torchrun the model trains through DDP; the checkpointer keeps
        # the unwrapped model, so checkpoints load into single-process runs.
        self.train_model = wrap_model(task.model)

    # Set-up

    def _register_recoverables(self) -> None:
        task = self.task
        wanted: list[tuple[str, Any]] = [
            ("model", task.model),
            ("optimizer", task.optimizer),
            ("epoch_counter", task.epochs),
            ("lr_scheduler", task.lr_scheduler),
            ("grad_scaler", task.grad_scaler),
            ("loop_state", self.loop_state),
        ]
        held = self.checkpointer.recoverables
        if not any(isinstance(obj, RNGState) for obj in held.values()):
            wanted.append(("rng", RNGState()))
        for name, obj in wanted:
            if obj is None or any(existing is obj for existing in held.values()):
                continue
            final_name = name if name not in held else f"runner_{name}"
            logger.debug("Registering %s as recoverable %r", type(obj).__name__, final_name)
            self.checkpointer.add_recoverable(final_name, obj)

    def recoverable_name(self, obj: Any) -> str:
        """Return the name under which ``obj`` is registered with the checkpointer."""
        for name, existing in self.checkpointer.recoverables.items():
            if existing is obj:
                return name
        raise KeyError(f"{type(obj).__name__} is not registered with the checkpointer.")

    # Recovery

    def recover(self) -> Checkpoint | None:
        """Load the checkpoint with the most optimizer steps, if any, and log where the run resumes."""
        checkpoint = self.checkpointer.recover_if_possible(importance_key=resume_order)
        self.resumed_from = checkpoint
        if checkpoint is None:
            logger.info("No checkpoint in %s: training from the start", self.checkpointer.checkpoints_dir)
            return None
        state = self.loop_state
        if is_end_of_epoch(checkpoint):
            position = f"end of epoch {state.epoch}"
        else:
            position = f"batch {state.batches_done} of epoch {state.epoch}"
        logger.info(
            "Resuming from checkpoint %s (epoch %d, step %d, %s)",
            checkpoint.path.name,
            state.epoch,
            state.step,
            position,
        )
        return checkpoint

    # Training

    def fit(self) -> None:
        """Recover if possible, then train until the epoch counter's limit.

        Raises
        ------
        TrainingInterruptedError
            If a watched signal arrived. A checkpoint was saved first, so
            calling ``fit`` again in a new process resumes from it.
        """
        self.checkpointer.acquire_lock()
        self.recover()
        self._timer_start = time.monotonic()
        self._last_save_time = time.monotonic()
        try:
            self._fit_epochs()
        except KeyboardInterrupt as interrupt:
            raise self._second_interrupt_error() from interrupt

    def _fit_epochs(self) -> None:
        with SignalWatcher(self.schedule.signal_numbers()) as watcher, self.progress:
            for epoch in self.task.epochs:
                self._train_epoch(epoch, watcher)
                metrics = self._end_epoch()
                due = self.schedule.should_save_at_epoch_end(epoch) or epoch == self.task.epochs.limit
                due, received = agree_to_save(due, watcher.received)
                if due or received is not None:
                    self._save(end_of_epoch=True, meta=metrics)
                if received is not None:
                    self._stop(received)

    def _train_epoch(self, epoch: int, watcher: SignalWatcher) -> None:
        task = self.task
        done = self.loop_state.start_epoch(epoch)
        # With one process this is build_loader's loader; with several, each
        # rank gets its share of the same (seed, epoch) order.
        loader = build_distributed_loader(
            task.train_data,
            task.batch_size,
            seed=task.seed,
            epoch=epoch,
            shuffle=True,
            start_batch=done,
            num_workers=task.num_workers,
            collate_fn=task.collate_fn,
        )
        total = loader.batch_sampler.num_batches  # type: ignore[union-attr]
        self.progress.start_epoch(epoch, task.epochs.limit, total, done)
        task.model.train()
        for batch in loader:
            loss, num_samples = self._train_step(batch)
            self.loop_state.record_batch(loss, num_samples)
            self.progress.advance(self.loop_state.batches_done, self.loop_state.step, self.loop_state.train_loss)
            due, received = agree_to_save(self._intra_epoch_save_due(), watcher.received)
            if due or received is not None:
                self._save(end_of_epoch=False, meta={"batch": self.loop_state.batches_done})
            if received is not None:
                self._stop(received)

    def _train_step(self, batch: Any) -> tuple[float, int]:
        task = self.task
        inputs, targets = self._to_device(batch)
        task.optimizer.zero_grad(set_to_none=True)
        loss = task.loss(self.train_model(inputs), targets)
        scaler = task.grad_scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            if task.max_grad_norm is not None:
                scaler.unscale_(task.optimizer)
                torch.nn.utils.clip_grad_norm_(task.model.parameters(), task.max_grad_norm)
            scaler.step(task.optimizer)
            scaler.update()
        else:
            loss.backward()
            if task.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(task.model.parameters(), task.max_grad_norm)
            task.optimizer.step()
        if task.lr_scheduler is not None and task.lr_scheduler_interval == "step":
            task.lr_scheduler.step()
        return float(loss.detach()), _batch_length(targets)

    def _intra_epoch_save_due(self) -> bool:
        if self.schedule.should_save_at_step(self.loop_state.step):
            return True
        return self.schedule.should_save_by_time(self._last_save_time, time.monotonic())

    def _end_epoch(self) -> dict[str, Any]:
        task = self.task
        metrics: dict[str, Any] = {"train_loss": self.loop_state.train_loss}
        if task.valid_data is not None:
            metrics.update(self.evaluate(task.valid_data, "valid"))
        scheduler = task.lr_scheduler
        if scheduler is not None and task.lr_scheduler_interval == "epoch":
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(metrics[task.monitor])
            else:
                scheduler.step()
        self.loop_state.finish_epoch(metrics)
        self.progress.end_epoch(metrics)
        return metrics

    # Saving

    def _save(self, end_of_epoch: bool, meta: dict[str, Any]) -> None:
        now = time.monotonic()
        self.loop_state.train_seconds += now - self._timer_start
        self._timer_start = now
        full_meta = {"epoch": self.loop_state.epoch, "step": self.loop_state.step, **meta}
        self._saving = True
        newest = self.checkpointer.save_checkpoint(meta=full_meta, end_of_epoch=end_of_epoch)
        self._saving = False
        self._last_saved = (newest, self.loop_state.step)
        self._last_save_time = time.monotonic()
        # Deleting ends with a barrier, so every rank takes part, with rank 0's checkpoint.
        newest = distributed.broadcast_object(newest)
        self._delete_older_intra_epoch(newest)
        if end_of_epoch and self.retention is not None:
            self.retention(self.checkpointer, newest)

    def _delete_older_intra_epoch(self, newest: Checkpoint) -> None:
        """Delete intra-epoch checkpoints other than ``newest``: only the newest position is needed to resume."""

        def is_stale(checkpoint: Checkpoint) -> bool:
            return not is_end_of_epoch(checkpoint) and checkpoint.path != newest.path

        self.checkpointer.delete_checkpoints(num_to_keep=0, ckpt_predicate=is_stale, verbosity=logging.INFO)

    def _second_interrupt_error(self) -> TrainingInterruptedError:
        """Describe a stop by KeyboardInterrupt (a second Ctrl-C), saying whether a checkpoint contains the current step."""
        state = self.loop_state
        if self._saving:
            saved = (
                "the checkpoint being saved was not completed (a save either finishes or leaves "
                "nothing behind)"
            )
        elif self._last_saved is not None and self._last_saved[1] == state.step:
            saved = f"checkpoint {self._last_saved[0].path.name} holds this step"
        else:
            saved = "no checkpoint was saved at this step"
        return TrainingInterruptedError(
            f"Stopped on a second SIGINT at epoch {state.epoch}, step {state.step}: {saved}. "
            "Run the same command again to resume from the newest complete checkpoint.",
            signal.SIGINT,
        )

    def _stop(self, signal_number: int) -> None:
        name = signal.Signals(signal_number).name
        state = self.loop_state
        raise TrainingInterruptedError(
            f"Stopped on {name} at epoch {state.epoch}, step {state.step} after saving a "
            "checkpoint; run the same command again to resume.",
            signal_number,
        )

    # Evaluation

    @torch.no_grad()
    def evaluate(self, dataset: Any, prefix: str, model: torch.nn.Module | None = None) -> dict[str, float]:
        """Return the mean loss and metrics of ``model`` (default: the task's) on ``dataset``.

        The keys are ``<prefix>_loss`` and ``<prefix>_<metric name>``. Batch
        means are weighted by batch size, so the result is the mean over
        samples.
        """
        task = self.task
        model = model if model is not None else task.model
        loader = build_loader(
            dataset,
            task.eval_batch_size or task.batch_size,
            seed=task.seed,
            epoch=0,
            shuffle=False,
            num_workers=task.num_workers,
            collate_fn=task.collate_fn,
        )
        was_training = model.training
        model.eval()
        sums = {"loss": 0.0, **{name: 0.0 for name in task.metrics}}
        count = 0
        for batch in loader:
            inputs, targets = self._to_device(batch)
            outputs = model(inputs)
            size = _batch_length(targets)
            sums["loss"] += float(task.loss(outputs, targets)) * size
            for name, metric in task.metrics.items():
                sums[name] += float(metric(outputs, targets)) * size
            count += size
        model.train(was_training)
        return {f"{prefix}_{name}": (total / count if count else math.nan) for name, total in sums.items()}

    def averaged_model(self, checkpoints: list[Checkpoint]) -> torch.nn.Module:
        """Return a copy of the model with parameters averaged over ``checkpoints``."""
        from recoverkit.state_dict import average_checkpoints

        name = self.recoverable_name(self.task.model)
        averaged = average_checkpoints(checkpoints, name)
        model = copy.deepcopy(self.task.model)
        model.load_state_dict(averaged)
        return model

    def _to_device(self, batch: Any) -> tuple[Any, Any]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(
                "Each batch must be an (inputs, targets) pair, got "
                f"{type(batch).__name__}. Make the dataset's samples (input, target) "
                "pairs or pass a collate_fn that returns such pairs."
            )
        inputs, targets = batch
        device = torch.device(self.task.device)
        return _move(inputs, device), _move(targets, device)


def _move(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    return value


def _batch_length(targets: Any) -> int:
    if isinstance(targets, torch.Tensor):
        return int(targets.shape[0]) if targets.dim() > 0 else 1
    return len(targets)


def retention_keeping_newest(policy: Any) -> Retention:
    """Wrap a retention policy so it prunes end-of-epoch checkpoints only and never the newest one.

    Intra-epoch checkpoints are pruned by the trainer itself. The newest
    checkpoint takes part in the ranking, so it counts among the
    ``num_to_keep`` kept ones. Only when the policy would delete it (such as
    ``min_keys: [valid_loss]`` with ``keep_recent: false`` after an epoch
    that did not improve) is it kept on top of what the policy requests, until
    the next save, so a crash never sends the run back to an older epoch.

    Parameters
    ----------
    policy : RetentionPolicy
        Any object with ``delete_kwargs()`` returning the keyword arguments
        of :meth:`Checkpointer.delete_checkpoints`.
    """

    def apply(checkpointer: Checkpointer, newest: Checkpoint) -> None:
        kwargs = dict(policy.delete_kwargs())
        inner = kwargs.pop("ckpt_predicate", None)

        def candidate(checkpoint: Checkpoint) -> bool:
            if not is_end_of_epoch(checkpoint):
                return False
            return inner is None or bool(inner(checkpoint))

        protect_newest = distributed.is_main_process() and _policy_deletes(checkpointer, newest, kwargs, candidate)

        def deletable(checkpoint: Checkpoint) -> bool:
            if protect_newest and checkpoint.path == newest.path:
                return False
            return candidate(checkpoint)

        checkpointer.delete_checkpoints(**kwargs, ckpt_predicate=deletable)

    return apply


def _policy_deletes(
    checkpointer: Checkpointer,
    newest: Checkpoint,
    kwargs: dict[str, Any],
    candidate: Callable[[Checkpoint], bool],
) -> bool:
    """Return whether the retention arguments ``kwargs`` would delete ``newest``."""
    from recoverkit.retention.selection import ckpt_recency, select_checkpoints_to_keep

    deletable, _kept = select_checkpoints_to_keep(
        checkpointer.list_checkpoints(),
        num_to_keep=kwargs.get("num_to_keep", 1),
        importance_keys=list(kwargs.get("importance_keys", (ckpt_recency,))),
        max_keys=list(kwargs.get("max_keys") or ()),
        min_keys=list(kwargs.get("min_keys") or ()),
        ckpt_predicate=candidate,
    )
    return any(checkpoint.path == newest.path for checkpoint in deletable)
