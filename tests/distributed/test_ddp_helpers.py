"""The data-parallel helpers in a single process: sampler, environment, RNG files."""

from __future__ import annotations

import logging

import pytest
import torch

from recoverkit import Checkpointer
from recoverkit.runner import distributed as ddp
from recoverkit.runner.data import EpochBatchSampler
from recoverkit.runner.distributed import DistributedEpochBatchSampler, PerRankRNGState


def rank_batches(num_samples, batch_size, rank, world_size, **options):
    sampler = DistributedEpochBatchSampler(
        num_samples, batch_size, seed=7, epoch=options.pop("epoch", 1), rank=rank, world_size=world_size, **options
    )
    return list(sampler)


@pytest.mark.parametrize(("num_samples", "batch_size"), [(10, 3), (7, 2), (1, 4), (64, 8)])
def test_one_rank_matches_epoch_batch_sampler(num_samples, batch_size):
    expected = list(EpochBatchSampler(num_samples, batch_size, seed=7, epoch=1))
    assert rank_batches(num_samples, batch_size, rank=0, world_size=1) == expected


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ranks_cover_dataset_with_equal_batches(world_size):
    per_rank = [rank_batches(11, 2, rank, world_size) for rank in range(world_size)]
    batch_counts = {len(batches) for batches in per_rank}
    assert len(batch_counts) == 1
    samples = [index for batches in per_rank for batch in batches for index in batch]
    assert sorted(set(samples)) == list(range(11))
    assert len(samples) == -(-11 // world_size) * world_size


def test_ranks_share_no_sample_when_even():
    first = {index for batch in rank_batches(12, 3, 0, 2) for index in batch}
    second = {index for batch in rank_batches(12, 3, 1, 2) for index in batch}
    assert first.isdisjoint(second)


def test_order_fixed_by_seed_and_epoch():
    assert rank_batches(20, 4, 1, 2, epoch=3) == rank_batches(20, 4, 1, 2, epoch=3)
    assert rank_batches(20, 4, 1, 2, epoch=3) != rank_batches(20, 4, 1, 2, epoch=4)


def test_start_batch_skips_trained_batches():
    full = rank_batches(20, 3, 1, 2)
    assert rank_batches(20, 3, 1, 2, start_batch=2) == full[2:]


def test_start_batch_past_end_raises():
    with pytest.raises(ValueError, match="nproc-per-node"):
        rank_batches(8, 2, 0, 2, start_batch=3)


def test_rank_out_of_range_raises():
    with pytest.raises(ValueError, match="Invalid rank 2"):
        rank_batches(8, 2, 2, 2)


def test_without_shuffle_ranks_interleave():
    assert rank_batches(6, 2, 1, 2, shuffle=False) == [[1, 3], [5]]


def test_init_without_world_size_stays_single(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert ddp.init_distributed() is False
    assert ddp.launched_by_torchrun() is False


def test_init_with_world_size_one_stays_single(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert ddp.init_distributed() is False
    assert ddp.launched_by_torchrun() is True


def test_init_with_invalid_rank_raises(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5"):
        ddp.init_distributed()


def test_init_with_non_integer_raises(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        ddp.init_distributed()


def test_wrap_model_is_identity_in_one_process():
    model = torch.nn.Linear(2, 2)
    assert ddp.wrap_model(model) is model
    assert ddp.unwrap_model(model) is model


def test_all_reduce_sums_in_one_process():
    assert ddp.all_reduce_sums([1, 2.5]) == [1.0, 2.5]


def test_per_rank_rng_writes_rank_file(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"rng": PerRankRNGState()})
    torch.manual_seed(3)
    checkpoint = checkpointer.save_checkpoint()
    expected = torch.rand(3)
    assert sorted(path.name for path in checkpoint.paramfiles["rng"].iterdir()) == ["rank-0.pt"]

    torch.rand(5)
    checkpointer.load_checkpoint(checkpoint)
    assert torch.equal(torch.rand(3), expected)


def test_per_rank_rng_falls_back_to_rank_zero(tmp_path, monkeypatch, caplog):
    checkpointer = Checkpointer(tmp_path, {"rng": PerRankRNGState()})
    torch.manual_seed(3)
    checkpoint = checkpointer.save_checkpoint()
    expected = torch.rand(3)

    monkeypatch.setattr(ddp.distributed, "get_rank", lambda: 1)
    with caplog.at_level(logging.WARNING, logger="recoverkit.runner.distributed"):
        checkpointer.load_checkpoint(checkpoint)
    assert torch.equal(torch.rand(3), expected)
    assert "no generator states for rank 1" in caplog.text
