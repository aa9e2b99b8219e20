"""Batches whose order is a function of (seed, epoch), so a resumed epoch replays exactly.

A shuffled epoch draws its permutation from a :class:`torch.Generator` seeded
with a hash of the run's seed and the epoch number. The global random number
generators are never used, so loading data does not change the random draws
of the model (dropout, augmentation). A run that resumes in the middle of an
epoch can therefore skip the batches it has already trained on without
drawing them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["EpochBatchSampler", "build_loader", "epoch_seed"]

logger = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """Return a 63-bit seed derived from the run's seed and the epoch number.

    Example
    -------
    >>> epoch_seed(1, 2) == epoch_seed(1, 2)
    True
    >>> epoch_seed(1, 2) == epoch_seed(2, 1)
    False
    """
    digest = hashlib.blake2b(f"recoverkit-data:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class EpochBatchSampler(Sampler[list[int]]):
    """Yield the index batches of one epoch, starting after ``start_batch`` batches.

    Parameters
    ----------
    num_samples : int
        The length of the dataset.
    batch_size : int
        Samples per batch. The last batch is smaller when ``num_samples`` is
        not a multiple of it, unless ``drop_last`` is True.
    seed : int
        The run's seed.
    epoch : int
        The epoch number; together with ``seed`` it fixes the order.
    shuffle : bool
        Whether to permute the samples. Without shuffling the order is
        ``0..num_samples-1`` in every epoch.
    start_batch : int
        How many batches of the epoch were already trained on. They are
        skipped without loading their samples.
    drop_last : bool
        Whether to drop the last, smaller batch.

    Example
    -------
    >>> full = list(EpochBatchSampler(10, 3, seed=1, epoch=1, shuffle=True))
    >>> rest = list(EpochBatchSampler(10, 3, seed=1, epoch=1, shuffle=True, start_batch=2))
    >>> rest == full[2:]
    True
    >>> len(full)
    4
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        start_batch: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch!r}.")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.shuffle = shuffle
        self.start_batch = int(start_batch)
        self.drop_last = drop_last
        if self.start_batch > self.num_batches:
            raise ValueError(
                f"Cannot start epoch {epoch} at batch {start_batch}: it has only "
                f"{self.num_batches} batches. The dataset or batch_size changed "
                "since the checkpoint was saved; resume with the same recipe."
            )

    @property
    def num_batches(self) -> int:
        """The number of batches in a whole epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def __len__(self) -> int:
        return self.num_batches - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        for batch in range(self.start_batch, self.num_batches):
            start = batch * self.batch_size
            yield order[start : start + self.batch_size].tolist()

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_samples)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return torch.randperm(self.num_samples, generator=generator)


def build_loader(
    dataset: Dataset[Any],
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle: bool,
    start_batch: int = 0,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader[Any]:
    """Build a DataLoader over one epoch of ``dataset``, in the order fixed by (seed, epoch).

    The loader gets its own generator, seeded from (seed, epoch), because a
    DataLoader draws a base seed for its workers each time an iterator is
    created. Without its own generator it would draw from torch's global
    generator, and a run resumed mid-epoch would draw different random
    numbers from then on.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        A map-style dataset (with ``__len__`` and ``__getitem__``).
    batch_size, seed, epoch, shuffle, start_batch
        As in :class:`EpochBatchSampler`.
    num_workers : int
        Worker processes of the DataLoader. Worker seeds derive from the
        loader's generator, so they are the same on every run too.
    collate_fn : callable, optional
        Merges a list of samples into a batch; torch's default collation if
        omitted.

    Returns
    -------
    torch.utils.data.DataLoader
    """
    sampler = EpochBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        batch_size,
        seed=seed,
        epoch=epoch,
        shuffle=shuffle,
        start_batch=start_batch,
    )
    generator = torch.Generator().manual_seed(epoch_seed(seed, -epoch))
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=generator,
    )
