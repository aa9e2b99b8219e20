"""Sharded save and load hooks in a single process, without a process group."""

from __future__ import annotations

import pytest
import torch

from recoverkit import Checkpointer
from recoverkit.errors import CheckpointFormatError, ShardedCheckpointError
from recoverkit.hooks.sharded import ShardedState, load_sharded, save_sharded


def make_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))


def train_one_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()


def test_sharded_state_restores_model_and_optimizer(tmp_path):
    model = make_model(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    train_one_step(model, optimizer)
    checkpointer = Checkpointer(tmp_path, {"trainer": ShardedState(model, optimizer)})
    checkpoint = checkpointer.save_checkpoint()
    saved_parameters = {name: value.clone() for name, value in model.state_dict().items()}
    saved_moment = optimizer.state[model[0].weight]["exp_avg"].clone()

    other_model = make_model(1)
    other_optimizer = torch.optim.Adam(other_model.parameters(), lr=0.1)
    other = Checkpointer(tmp_path, {"trainer": ShardedState(other_model, other_optimizer)})
    other.load_checkpoint(checkpoint)

    for name, value in other_model.state_dict().items():
        assert torch.equal(value, saved_parameters[name]), name
    assert torch.equal(other_optimizer.state[other_model[0].weight]["exp_avg"], saved_moment)
    assert float(other_optimizer.state[other_model[0].weight]["step"]) == 1.0


def test_module_hooks_write_dcp_folder(tmp_path):
    model = make_model(0)
    save_sharded(model, tmp_path / "model.ckpt")
    assert (tmp_path / "model.ckpt" / ".metadata").is_file()

    restored = make_model(1)
    load_sharded(restored, tmp_path / "model.ckpt")
    for name, value in restored.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name


def test_custom_hooks_for_object_with_state_dict(tmp_path):
    scheduler_model = make_model(0)
    optimizer = torch.optim.SGD(scheduler_model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    optimizer.step()
    scheduler.step()
    checkpointer = Checkpointer(tmp_path)
    checkpointer.add_recoverable(
        "scheduler", scheduler, custom_save_hook=save_sharded, custom_load_hook=load_sharded
    )
    checkpoint = checkpointer.save_checkpoint()
    scheduler.step()
    assert scheduler.last_epoch == 2

    checkpointer.load_checkpoint(checkpoint)
    assert scheduler.last_epoch == 1


def test_load_from_single_file_raises(tmp_path):
    model = make_model(0)
    torch.save(model.state_dict(), tmp_path / "model.ckpt")
    with pytest.raises(CheckpointFormatError, match="single file"):
        load_sharded(ShardedState(model), tmp_path / "model.ckpt")


def test_load_from_unfinished_folder_raises(tmp_path):
    (tmp_path / "model.ckpt").mkdir()
    with pytest.raises(CheckpointFormatError, match=".metadata"):
        load_sharded(make_model(0), tmp_path / "model.ckpt")


def test_missing_value_raises_when_strict(tmp_path):
    save_sharded(torch.nn.Linear(3, 4), tmp_path / "model.ckpt")
    with pytest.raises(ShardedCheckpointError, match="0.weight") as raised:
        load_sharded(make_model(0), tmp_path / "model.ckpt")
    assert raised.value.failed_ranks == (0,)


def test_missing_value_keeps_state_when_not_strict(tmp_path):
    saved = torch.nn.Sequential(torch.nn.Linear(3, 4))
    save_sharded(saved, tmp_path / "model.ckpt")
    model = make_model(1)
    second_layer = model[1].weight.clone()
    load_sharded(ShardedState(model, strict=False), tmp_path / "model.ckpt")
    assert torch.equal(model[0].weight, saved[0].weight)
    assert torch.equal(model[1].weight, second_layer)


def test_sharded_state_rejects_non_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ShardedState({"weight": torch.zeros(1)})


def test_sharded_state_rejects_non_optimizer():
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        ShardedState(make_model(0), [object()])


def test_optimizer_alone_raises(tmp_path):
    optimizer = torch.optim.Adam(make_model(0).parameters())
    with pytest.raises(TypeError, match="ShardedState"):
        save_sharded(optimizer, tmp_path / "optimizer.ckpt")
