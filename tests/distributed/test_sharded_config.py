"""Declaring a sharded recoverable in the checkpointer section of a config."""

from __future__ import annotations

import pytest
import torch

from recoverkit.config import load_checkpointer
from recoverkit.errors import ConfigError
from recoverkit.hooks.sharded import ShardedState


def section(tmp_path, entry):
    return {"checkpointer": {"checkpoints_dir": str(tmp_path / "checkpoints"), "recoverables": {"trainer": entry}}}


def test_sharded_entry_builds_sharded_state(tmp_path):
    model = torch.nn.Linear(2, 3)
    optimizer = torch.optim.Adam(model.parameters())
    entry = {"ref": "model", "sharded": True, "optimizers": ["optimizer"]}

    loaded = load_checkpointer(section(tmp_path, entry), objects={"model": model, "optimizer": optimizer})

    trainer = loaded.checkpointer.recoverables["trainer"]
    assert isinstance(trainer, ShardedState)
    assert trainer.model is model
    assert trainer.optimizers == [optimizer]
    checkpoint = loaded.checkpointer.save_checkpoint()
    assert (checkpoint.paramfiles["trainer"] / ".metadata").is_file()


def test_optimizers_without_sharded_raises(tmp_path):
    model = torch.nn.Linear(2, 3)
    objects = {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)}
    entry = {"ref": "model", "optimizers": ["optimizer"]}
    with pytest.raises(ConfigError, match="optimizers"):
        load_checkpointer(section(tmp_path, entry), objects=objects)


def test_sharded_with_unknown_optimizer_raises(tmp_path):
    entry = {"ref": "model", "sharded": True, "optimizers": ["missing"]}
    with pytest.raises(ConfigError, match="'missing'"):
        load_checkpointer(section(tmp_path, entry), objects={"model": torch.nn.Linear(2, 3)})


def test_sharded_with_save_hook_raises(tmp_path):
    entry = {"ref": "model", "sharded": True, "save_hook": "recoverkit.hooks.sharded:save_sharded"}
    with pytest.raises(ConfigError, match="sharded"):
        load_checkpointer(section(tmp_path, entry), objects={"model": torch.nn.Linear(2, 3)})
