"""Functional tests of the memory-bounded checkpoint averaging."""

from __future__ import annotations

import weakref

import torch

from recoverkit import Checkpointer, average_checkpoints, average_state_dicts


def test_half_precision_summed_in_float32():
    # Summed in float16, 2048 + 1 rounds back to 2048 and the mean is 204.8.
    state_dicts = [{"weight": torch.tensor([2048.0]).half()}]
    state_dicts += [{"weight": torch.tensor([1.0]).half()} for _ in range(9)]

    averaged = average_state_dicts(iter(state_dicts))

    assert averaged["weight"].dtype == torch.float16
    assert averaged["weight"].item() == torch.tensor(205.7).half().item()


def test_integer_buffers_copied_not_averaged():
    state_dicts = [{"steps": torch.tensor(step, dtype=torch.int64)} for step in (8, 4, 3)]

    averaged = average_state_dicts(iter(state_dicts))

    assert averaged["steps"].dtype == torch.int64
    assert averaged["steps"].item() == 8


def test_average_reads_one_checkpoint_at_a_time(tmp_path):
    model = torch.nn.Linear(4, 1, bias=False)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    for value in range(4):
        with torch.no_grad():
            model.weight.fill_(float(value))
        checkpointer.save_checkpoint(name=f"v{value}")
    loaded = []
    alive_at_load = []

    def loader(path):
        alive_at_load.append(sum(reference() is not None for reference in loaded))
        state = torch.load(path, weights_only=True)
        loaded.append(weakref.ref(state["weight"]))
        return state

    averaged = average_checkpoints(checkpointer.find_checkpoints(), "model", parameter_loader=loader)

    assert torch.equal(averaged["weight"], torch.full((1, 4), 1.5))
    assert alive_at_load == [0, 0, 0, 0]
