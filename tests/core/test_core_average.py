"""Averaging state dicts and checkpoints gives exact values."""

import weakref

import pytest
import torch

from recoverkit import Checkpointer, average_checkpoints, average_state_dicts


class TrackedDict(dict):
    """A dict that weak references can watch, to count live state dicts."""


def test_average_float_tensors():
    averaged = average_state_dicts(
        [
            {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.0)},
            {"w": torch.tensor([3.0, 4.0]), "b": torch.tensor(1.0)},
            {"w": torch.tensor([5.0, 9.0]), "b": torch.tensor(5.0)},
        ]
    )
    assert torch.equal(averaged["w"], torch.tensor([3.0, 5.0]))
    assert torch.equal(averaged["b"], torch.tensor(2.0))
    assert averaged["w"].dtype == torch.float32


def test_average_float64_keeps_precision():
    values = [0.1, 0.2, 0.4]
    averaged = average_state_dicts([{"x": torch.tensor([v], dtype=torch.float64)} for v in values])
    assert averaged["x"].dtype == torch.float64
    assert averaged["x"].item() == (0.1 + 0.2 + 0.4) / 3


def test_average_copies_integer_buffers_from_first():
    averaged = average_state_dicts(
        [
            {"count": torch.tensor(7), "mask": torch.tensor([False, True]), "w": torch.tensor([0.0])},
            {"count": torch.tensor(2), "mask": torch.tensor([False, False]), "w": torch.tensor([1.0])},
            {"count": torch.tensor(1), "mask": torch.tensor([True, False]), "w": torch.tensor([2.0])},
        ]
    )
    assert averaged["count"].dtype == torch.int64
    assert averaged["count"].item() == 7
    assert torch.equal(averaged["mask"], torch.tensor([False, True]))
    assert torch.equal(averaged["w"], torch.tensor([1.0]))


def test_average_half_precision_summed_in_float32():
    # In float16, 2048 + 1 rounds back to 2048, so a float16 sum gives 2048 / 3.
    values = [2048.0, 1.0, 1.0]
    averaged = average_state_dicts([{"x": torch.tensor([v], dtype=torch.float16)} for v in values])
    assert averaged["x"].dtype == torch.float16
    assert averaged["x"].item() == torch.tensor(2050.0 / 3, dtype=torch.float16).item()
    assert averaged["x"].item() == 683.5


def test_average_bfloat16_summed_in_float32():
    values = [256.0, 1.0, 1.0, 1.0]
    averaged = average_state_dicts([{"x": torch.tensor([v], dtype=torch.bfloat16)} for v in values])
    assert averaged["x"].dtype == torch.bfloat16
    assert averaged["x"].item() == torch.tensor(259.0 / 4, dtype=torch.bfloat16).item()


def test_average_does_not_modify_inputs():
    first = {"w": torch.tensor([1.0])}
    second = {"w": torch.tensor([3.0])}
    average_state_dicts([first, second])
    assert first["w"].item() == 1.0
    assert second["w"].item() == 3.0


def test_average_holds_two_state_dicts_at_most():
    alive_at_each_yield = []
    watched = []

    def state_dicts():
        for value in range(5):
            alive_at_each_yield.append(sum(ref() is not None for ref in watched))
            state_dict = TrackedDict(w=torch.full((3,), float(value)))
            watched.append(weakref.ref(state_dict))
            yield state_dict
            del state_dict

    averaged = average_state_dicts(state_dicts())
    # When the next state dict is loaded, the previous one is gone: only the
    # running sum and the new one exist.
    assert alive_at_each_yield == [0, 0, 0, 0, 0]
    assert torch.equal(averaged["w"], torch.full((3,), 2.0))


def test_average_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        average_state_dicts([])


def test_average_different_keys_raises():
    with pytest.raises(ValueError, match="different keys"):
        average_state_dicts([{"a": torch.tensor(1.0)}, {"b": torch.tensor(1.0)}])


def saved_checkpoints(tmp_path, values):
    model = torch.nn.Linear(2, 1)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    for value in values:
        with torch.no_grad():
            model.weight.fill_(value)
            model.bias.fill_(-value)
        checkpointer.save_checkpoint(meta={"value": value})
    return checkpointer


def test_average_checkpoints_values(tmp_path):
    checkpointer = saved_checkpoints(tmp_path, [1.0, 2.0, 6.0, 100.0])
    chosen = checkpointer.find_checkpoints(ckpt_predicate=lambda ckpt: ckpt.meta["value"] < 50)
    averaged = average_checkpoints(chosen, "model")
    assert torch.equal(averaged["weight"], torch.full((1, 2), 3.0))
    assert torch.equal(averaged["bias"], torch.full((1,), -3.0))


def test_average_checkpoints_latest_three(tmp_path):
    checkpointer = saved_checkpoints(tmp_path, [float(value) for value in range(10)])
    averaged = average_checkpoints(checkpointer.find_checkpoints(max_num_checkpoints=3), "model")
    model = torch.nn.Linear(2, 1)
    model.load_state_dict(averaged)
    assert torch.equal(model.weight, torch.full((1, 2), 8.0))


def test_parameter_loader_called_with_path_alone(tmp_path):
    checkpointer = saved_checkpoints(tmp_path, [2.0, 4.0])
    chosen = checkpointer.find_checkpoints()
    calls = []

    def loader(*args, **kwargs):
        calls.append((args, kwargs))
        return torch.load(args[0], weights_only=True)

    averaged = average_checkpoints(chosen, "model", parameter_loader=loader)
    assert calls == [((ckpt.paramfiles["model"],), {}) for ckpt in chosen]
    assert averaged["weight"][0, 0].item() == 3.0


def test_torch_load_as_parameter_loader(tmp_path):
    checkpointer = saved_checkpoints(tmp_path, [2.0, 4.0])
    averaged = average_checkpoints(checkpointer.find_checkpoints(), "model", parameter_loader=torch.load)
    assert averaged["bias"][0].item() == -3.0


def test_custom_averager_gets_iterator(tmp_path):
    checkpointer = saved_checkpoints(tmp_path, [1.0, 2.0, 3.0])
    received = []

    def averager(loaded):
        received.append(type(loaded))
        return [state["weight"][0, 0].item() for state in loaded]

    result = average_checkpoints(checkpointer.find_checkpoints(), "model", averager=averager)
    assert result == [3.0, 2.0, 1.0]
    assert not issubclass(received[0], (list, tuple))


def test_average_checkpoints_missing_recoverable(tmp_path):
    checkpointer = saved_checkpoints(tmp_path, [1.0])
    with pytest.raises(KeyError, match="'encoder'"):
        average_checkpoints(checkpointer.find_checkpoints(), "encoder")
