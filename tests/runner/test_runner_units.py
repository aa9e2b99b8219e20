"""Fast checks of the runner's pieces: data order, folder names, loop state, sweep expansion."""

from __future__ import annotations

import pytest
import torch

from recoverkit.runner import EpochBatchSampler, LoopState, expand_sweep, run_dirname
from recoverkit.runner.recipe import hydra_quoted


def test_sampler_order_depends_on_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[list[int]]:
        return list(EpochBatchSampler(50, 8, seed=seed, epoch=epoch))

    assert order(1, 1) == order(1, 1)
    assert order(1, 1) != order(1, 2)
    assert order(1, 1) != order(2, 1)


def test_sampler_start_batch_skips_exactly() -> None:
    full = list(EpochBatchSampler(50, 8, seed=3, epoch=4))
    for start in range(len(full) + 1):
        rest = list(EpochBatchSampler(50, 8, seed=3, epoch=4, start_batch=start))
        assert rest == full[start:], start


def test_sampler_covers_every_sample_once() -> None:
    batches = list(EpochBatchSampler(50, 8, seed=3, epoch=4))
    flat = sorted(index for batch in batches for index in batch)

    assert flat == list(range(50))
    assert [len(batch) for batch in batches] == [8, 8, 8, 8, 8, 8, 2]


def test_sampler_rejects_start_past_end() -> None:
    with pytest.raises(ValueError, match="has only 7 batches"):
        EpochBatchSampler(50, 8, seed=3, epoch=4, start_batch=8)


def test_sampler_leaves_global_generator_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    list(EpochBatchSampler(50, 8, seed=3, epoch=4))

    assert torch.equal(torch.rand(3), expected)


def test_run_dirname_cases() -> None:
    assert run_dirname([]) == "default"
    assert run_dirname(["seed=2", "lr=0.1"]) == run_dirname(["lr=0.1", "seed=2"])
    assert run_dirname(["lr=0.1", "output_dir=/x", "hydra.verbose=true"]) == "lr=0.1"
    assert run_dirname(["a=b/c"]) != run_dirname(["a=b-c"])
    assert "/" not in run_dirname(["a=b/c"])
    assert len(run_dirname([f"key{i}=value{i}" for i in range(40)])) <= 80


def test_loop_state_round_trip() -> None:
    state = LoopState()
    state.start_epoch(2)
    state.record_batch(loss=1.0, num_samples=4)
    state.record_batch(loss=0.5, num_samples=2)
    state.finish_epoch({"valid_loss": 0.25})
    restored = LoopState()
    restored.load_state_dict(state.state_dict())

    assert restored.state_dict() == state.state_dict()
    assert restored.train_loss == pytest.approx(5.0 / 6.0)
    assert restored.start_epoch(2) == 2
    assert restored.start_epoch(3) == 0
    assert restored.history == [{"epoch": 2, "step": 2, "valid_loss": 0.25}]


def test_expand_sweep_is_cartesian() -> None:
    jobs = expand_sweep(["a=1,2", "b=x,y", "c=3"])

    assert jobs == [
        ["a=1", "b=x", "c=3"],
        ["a=1", "b=y", "c=3"],
        ["a=2", "b=x", "c=3"],
        ["a=2", "b=y", "c=3"],
    ]


def test_hydra_quoted_escapes_quotes() -> None:
    assert hydra_quoted("it's") == "'it\\'s'"
