"""Case 5: objects without hooks are rejected at registration; subclasses find defaults."""

from __future__ import annotations

import pytest
import torch

from recoverkit import Checkpointer
from recoverkit.hooks import DEFAULT_LOAD_HOOKS, DEFAULT_SAVE_HOOKS, get_default_hook, torch_recovery, torch_save


class PlainState:
    def __init__(self) -> None:
        self.value = 1


class MyModel(torch.nn.Linear):
    pass


class MyOptimizer(torch.optim.AdamW):
    pass


class MyScheduler(torch.optim.lr_scheduler.StepLR):
    pass


class MyPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    pass


class MyScaler(torch.amp.GradScaler):
    pass


def test_object_without_hooks_rejected_at_registration(tmp_path):
    checkpointer = Checkpointer(tmp_path)

    with pytest.raises(TypeError) as raised:
        checkpointer.add_recoverable("state", PlainState())

    message = str(raised.value)
    assert "PlainState" in message
    assert "register_checkpoint_hooks" in message
    assert "custom_save_hook" in message
    assert checkpointer.recoverables == {}
    assert list(tmp_path.iterdir()) == []


def test_object_without_hooks_rejected_by_constructor(tmp_path):
    with pytest.raises(TypeError, match="PlainState"):
        Checkpointer(tmp_path, {"state": PlainState()})


def test_subclasses_find_default_hooks(tmp_path):
    model = MyModel(2, 2)
    optimizer = MyOptimizer(model.parameters(), lr=0.1)
    objects = {
        "model": model,
        "optimizer": optimizer,
        "scheduler": MyScheduler(optimizer, step_size=2),
        "plateau": MyPlateau(optimizer),
        "scaler": MyScaler("cpu"),
    }

    for name, obj in objects.items():
        assert get_default_hook(obj, DEFAULT_SAVE_HOOKS) is torch_save, name
        assert get_default_hook(obj, DEFAULT_LOAD_HOOKS) is torch_recovery, name
    checkpointer = Checkpointer(tmp_path, objects)
    checkpoint = checkpointer.save_checkpoint()
    assert sorted(checkpoint.paramfiles) == sorted(objects)
    assert checkpointer.recover_if_possible() == checkpoint
