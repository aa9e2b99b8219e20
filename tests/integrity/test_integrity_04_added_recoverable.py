"""Case 4: a recoverable added after a checkpoint was saved."""

from __future__ import annotations

import pytest
import torch

from recoverkit import Checkpointer, MissingRecoverableError


def save_model_only(checkpoints_dir) -> torch.Tensor:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    Checkpointer(checkpoints_dir, {"model": model}).save_checkpoint()
    return model.weight.detach().clone()


def test_new_recoverable_named_in_error(tmp_path):
    save_model_only(tmp_path)
    model = torch.nn.Linear(3, 3)
    scaler = torch.amp.GradScaler("cpu")
    checkpointer = Checkpointer(tmp_path, {"model": model, "scaler": scaler})

    with pytest.raises(MissingRecoverableError) as raised:
        checkpointer.recover_if_possible()

    message = str(raised.value)
    assert "'scaler'" in message
    assert "optional_load" in message
    assert "'model'" not in message


def test_new_recoverable_with_optional_load(tmp_path):
    saved_weight = save_model_only(tmp_path)
    model = torch.nn.Linear(3, 3)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    checkpointer.add_recoverable("scaler", scaler, optional_load=True)

    recovered = checkpointer.recover_if_possible()

    assert recovered is not None
    assert torch.equal(model.weight, saved_weight)
    assert scaler.get_scale() == 8.0


def test_missing_recoverable_does_not_fall_back(tmp_path):
    # Every checkpoint lacks the new recoverable, so skipping to an older one would only hide the cause.
    save_model_only(tmp_path)
    save_model_only(tmp_path)
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(3, 3), "scaler": torch.amp.GradScaler("cpu")})

    with pytest.raises(MissingRecoverableError):
        checkpointer.recover_if_possible()
