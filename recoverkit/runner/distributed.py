"""Data-parallel training on several processes, launched by ``torchrun``.

``torchrun --nproc-per-node N`` starts N copies of the same command and sets
each one's rank and rendezvous address in environment variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). The helpers here join that
process group, wrap the model in ``DistributedDataParallel`` (DDP), and split
each epoch's batches between the ranks so that the order stays a function of
(seed, epoch). Without those variables every helper falls back to a single
process, so the same training code runs with and without ``torchrun``.

A DDP run keeps one copy of the replicated state: rank 0 writes the model,
optimizer and loop state, and every rank loads them on resume. The random
number generators may differ between ranks, so :class:`PerRankRNGState`
saves one file per rank.
"""

from __future__ import annotations

import datetime
import logging
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from recoverkit import distributed
from recoverkit.hooks.decorators import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from recoverkit.recoverables.rng import RNGState
from recoverkit.runner.data import EpochBatchSampler, epoch_seed
from recoverkit.storage.atomic import fsync_dir
from recoverkit.storage.torch_io import load_weights_only, save_torch_file

__all__ = [
    "DistributedEpochBatchSampler",
    "PerRankRNGState",
    "agree_to_save",
    "all_reduce_sums",
    "build_distributed_loader",
    "destroy_distributed",
    "init_distributed",
    "launched_by_torchrun",
    "unwrap_model",
    "wrap_model",
]

logger = logging.getLogger(__name__)

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE")


def launched_by_torchrun() -> bool:
    """Return True when ``torchrun`` (or another launcher) set ``RANK`` and ``WORLD_SIZE``."""
    return all(name in os.environ for name in _TORCHRUN_VARIABLES)


def init_distributed(
    backend: str | None = None,
    init_method: str | None = None,
    timeout_seconds: float | None = None,
) -> bool:
    """Join the process group that the launcher described in the environment.

    Does nothing, and returns False, when ``WORLD_SIZE`` is missing or 1, so
    a run started without ``torchrun`` stays a single process. Returns True
    if a process group is initialised afterwards, including one initialised
    before the call.

    Parameters
    ----------
    backend : str, optional
        ``"gloo"`` or ``"nccl"``. By default ``"nccl"`` when CUDA is available,
        else ``"gloo"``, which is the backend for CPU training.
    init_method : str, optional
        Where the processes meet, such as ``"file:///shared/rendezvous"``.
        By default ``"env://"``: the ``MASTER_ADDR`` and ``MASTER_PORT`` that
        ``torchrun`` sets.
    timeout_seconds : float, optional
        How long collective operations wait for the other ranks before they
        fail; torch's default (10 minutes for NCCL, 30 for gloo) if omitted.

    Returns
    -------
    bool
        Whether this process is part of a process group.

    Raises
    ------
    ValueError
        If ``RANK`` or ``WORLD_SIZE`` is not an integer, or the rank is not
        below the world size.
    """
    if distributed.is_distributed():
        return True
    world_size = _int_from_environment("WORLD_SIZE", default=1)
    if world_size <= 1:
        return False
    rank = _int_from_environment("RANK", default=0)
    if not 0 <= rank < world_size:
        raise ValueError(
            f"Invalid RANK={rank} for WORLD_SIZE={world_size}: the rank must be in "
            f"0..{world_size - 1}. Start the processes with torchrun, which sets both."
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(_int_from_environment("LOCAL_RANK", default=0))
    timeout = datetime.timedelta(seconds=timeout_seconds) if timeout_seconds is not None else None
    dist.init_process_group(
        backend,
        init_method=init_method or "env://",
        rank=rank,
        world_size=world_size,
        timeout=timeout,
    )
    logger.info("Joined process group as rank %d of %d (backend %s)", rank, world_size, backend)
    return True


def destroy_distributed() -> None:
    """Leave the process group, if this process is in one."""
    if distributed.is_distributed():
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, **ddp_options: Any) -> torch.nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` when a process group exists.

    DDP copies rank 0's parameters and buffers to every rank when it wraps
    the model, and averages the gradients of each backward pass over the
    ranks. Register the unwrapped model with the Checkpointer (see
    :func:`unwrap_model`), so the checkpoint's keys carry no ``module.``
    prefix and load into single-process runs too.

    Parameters
    ----------
    model : torch.nn.Module
        The model, on this rank's device.
    **ddp_options
        Passed to ``DistributedDataParallel``.

    Returns
    -------
    torch.nn.Module
        The DDP wrapper, or ``model`` itself in a single process.
    """
    if not distributed.is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        device = torch.cuda.current_device()
        ddp_options.setdefault("device_ids", [device])
        model = model.to(device)
    return DistributedDataParallel(model, **ddp_options)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Return the module inside a DDP wrapper, or ``model`` itself."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel):
        return model.module
    return model


class DistributedEpochBatchSampler(EpochBatchSampler):
    """Yield this rank's index batches of one epoch, in an order fixed by (seed, epoch).

    All ranks draw the same permutation of the dataset and rank ``r`` takes
    positions ``r, r + world_size, ...`` of it. When the dataset does not
    split evenly, the first samples of the permutation are repeated, so that
    every rank has the same number of batches: DDP needs the same number of
    backward passes on every rank. With ``world_size=1`` the batches are those
    of :class:`recoverkit.runner.data.EpochBatchSampler`.

    ``num_samples`` is the number of samples of each rank, repeated ones
    included, and ``dataset_size`` the length of the whole dataset.

    Parameters
    ----------
    num_samples : int
        The length of the whole dataset.
    batch_size : int
        Samples per batch on each rank, so one optimizer step sees
        ``batch_size * world_size`` samples.
    seed, epoch : int
        Together they fix the order.
    rank, world_size : int, optional
        This process's rank and the number of ranks; those of the current
        process group by default.
    shuffle : bool
        Whether to permute the samples.
    start_batch : int
        How many of this rank's batches were already trained on; they are
        skipped. Every rank is at the same batch when a checkpoint is saved,
        so the same value is right for every rank.
    drop_last : bool
        Whether to drop this rank's last, smaller batch.

    Raises
    ------
    ValueError
        If ``batch_size`` is below 1, the rank is out of range, or
        ``start_batch`` is negative or past the end of the epoch.

    Example
    -------
    >>> rank0 = list(DistributedEpochBatchSampler(5, 2, seed=1, epoch=1, rank=0, world_size=2))
    >>> rank1 = list(DistributedEpochBatchSampler(5, 2, seed=1, epoch=1, rank=1, world_size=2))
    >>> [len(batch) for batch in rank0], [len(batch) for batch in rank1]
    ([2, 1], [2, 1])
    >>> sorted(set(sum(rank0 + rank1, [])))
    [0, 1, 2, 3, 4]
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        epoch: int,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle: bool = True,
        start_batch: int = 0,
        drop_last: bool = False,
    ) -> None:
        self.rank = distributed.get_rank() if rank is None else int(rank)
        self.world_size = distributed.get_world_size() if world_size is None else int(world_size)
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"Invalid rank {self.rank} for world size {self.world_size}: the rank must "
                "be in 0..world_size-1."
            )
        self.dataset_size = int(num_samples)
        samples_per_rank = -(-self.dataset_size // self.world_size)
        try:
            super().__init__(
                samples_per_rank,
                batch_size,
                seed=seed,
                epoch=epoch,
                shuffle=shuffle,
                start_batch=start_batch,
                drop_last=drop_last,
            )
        except ValueError as error:
            if int(start_batch) <= 0:
                raise
            raise ValueError(
                f"{error} With several processes, also resume with the same number of "
                f"processes (torchrun --nproc-per-node); this is rank {self.rank} of "
                f"{self.world_size}."
            ) from None

    def _order(self) -> torch.Tensor:
        """Return this rank's samples of the epoch, in training order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.dataset_size, generator=generator)
        else:
            order = torch.arange(self.dataset_size)
        padding = self.num_samples * self.world_size - self.dataset_size
        if padding:
            order = torch.cat([order, order[:padding]])
        return order[self.rank :: self.world_size]


def build_distributed_loader(
    dataset: Dataset[Any],
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle: bool,
    start_batch: int = 0,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    drop_last: bool = False,
) -> DataLoader[Any]:
    """Build a DataLoader over this rank's part of one epoch of ``dataset``.

    It takes the arguments of :func:`recoverkit.runner.data.build_loader`;
    ``batch_size`` is per rank. The loader's own generator is seeded from
    (seed, epoch, rank), so worker processes draw the same seeds on every run.

    Returns
    -------
    torch.utils.data.DataLoader
    """
    sampler = DistributedEpochBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        batch_size,
        seed=seed,
        epoch=epoch,
        shuffle=shuffle,
        start_batch=start_batch,
        drop_last=drop_last,
    )
    # Rank 0 gets the seed that build_loader uses, the others a different one each.
    loader_seed = (epoch_seed(seed, -epoch) + sampler.rank) % 2**63
    generator = torch.Generator().manual_seed(loader_seed)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=generator,
    )


def all_reduce_sums(values: Sequence[float]) -> list[float]:
    """Return the element-wise sums of ``values`` over every rank.

    Use it to combine per-rank totals, such as a loss sum and a sample
    count, before computing a mean. The sums are computed in float64. In a
    single process the values are returned unchanged.

    Example
    -------
    >>> all_reduce_sums([1.5, 2.0])
    [1.5, 2.0]
    """
    if not distributed.is_distributed():
        return [float(value) for value in values]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    totals = torch.tensor([float(value) for value in values], dtype=torch.float64, device=device)
    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    return totals.cpu().tolist()


def agree_to_save(save_due: bool, signal_number: int | None) -> tuple[bool, int | None]:
    """Combine every rank's save decision, so that all ranks save and stop at the same batch.

    A save is a collective operation, so the ranks must decide together.
    Decisions by step count agree anyway, but a time-based schedule and a
    signal (``torchrun`` forwards SIGTERM to every rank, each at its own
    moment) do not. The result is True if any rank's ``save_due`` is, and the
    highest signal number any rank received. In a single process the
    arguments are returned unchanged.

    Parameters
    ----------
    save_due : bool
        Whether this rank's schedule wants a checkpoint now.
    signal_number : int or None
        The stop signal this rank received, if any.

    Returns
    -------
    tuple of (bool, int or None)

    Example
    -------
    >>> agree_to_save(False, 15)
    (False, 15)
    """
    if not distributed.is_distributed():
        return bool(save_due), signal_number
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    flags = torch.tensor([int(bool(save_due)), int(signal_number or 0)], dtype=torch.int64, device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    agreed_save, agreed_signal = (int(value) for value in flags.cpu().tolist())
    return bool(agreed_save), (agreed_signal or None)


@register_checkpoint_hooks(save_on_main_only=False)
class PerRankRNGState(RNGState):
    """The random number generator states of every rank, one file per rank.

    Register it in place of :class:`~recoverkit.RNGState` when the ranks'
    generators differ, for example when each rank seeds with ``seed + rank``
    or draws a different number of random values. The recoverable's place in
    the checkpoint becomes a folder with ``rank-<r>.pt`` for each rank ``r``.
    When a checkpoint is loaded with more ranks than saved it, the ranks
    without a file of their own take rank 0's states: the run continues, but
    not exactly as it would have.
    """

    @mark_as_saver
    def _save(self, path: pathlib.Path) -> None:
        folder = pathlib.Path(path)
        folder.mkdir(exist_ok=True)
        save_torch_file(self.state_dict(), folder / _rank_filename(distributed.get_rank()))
        fsync_dir(folder)

    @mark_as_loader
    def _recover(self, path: pathlib.Path, end_of_epoch: bool) -> None:
        del end_of_epoch
        folder = pathlib.Path(path)
        rank = distributed.get_rank()
        own_file = folder / _rank_filename(rank)
        if own_file.is_file():
            self.load_state_dict(load_weights_only(own_file))
            return
        logger.warning(
            "Checkpoint %s has no generator states for rank %d (it was saved by fewer "
            "processes): loading rank 0's states, so random draws will differ from an "
            "uninterrupted run",
            folder,
            rank,
        )
        self.load_state_dict(load_weights_only(folder / _rank_filename(0)))


def _rank_filename(rank: int) -> str:
    return f"rank-{rank}.pt"


def _int_from_environment(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"Invalid environment variable {name}={text!r}: expected an integer. "
            "Start the processes with torchrun, which sets it."
        ) from None
