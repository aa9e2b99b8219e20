"""Case 3: learning rate, scheduler step count and GradScaler scale survive recovery.

They must equal their save-time values whatever order the recoverables were
registered in, because a scheduler built for a fresh optimizer changes the
optimizer's learning rate, and loading must not let that win.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from recoverkit import Checkpointer

NAMES = ("model", "optimizer", "scheduler", "scaler")


def build_training(seed: int) -> dict:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    # LinearLR changes the learning rate when it is built, so a fresh one disagrees with a saved one.
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=10)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}


def train(objects: dict, steps: int) -> None:
    inputs = torch.ones(8, 4)
    for _ in range(steps):
        objects["optimizer"].zero_grad()
        loss = objects["model"](inputs).pow(2).mean()
        objects["scaler"].scale(loss).backward()
        objects["scaler"].step(objects["optimizer"])
        objects["scaler"].update()
        objects["scheduler"].step()


@pytest.mark.parametrize("order", list(itertools.permutations(NAMES)), ids="-".join)
def test_training_state_survives_any_order(tmp_path, order):
    trained = build_training(0)
    train(trained, steps=4)
    saved_lr = trained["optimizer"].param_groups[0]["lr"]
    saved_last_epoch = trained["scheduler"].last_epoch
    saved_step_count = trained["scheduler"]._step_count
    saved_scale = trained["scaler"].get_scale()
    Checkpointer(tmp_path, {name: trained[name] for name in order}).save_checkpoint()

    fresh = build_training(1)
    Checkpointer(tmp_path, {name: fresh[name] for name in order}).recover_if_possible()

    assert saved_lr != pytest.approx(0.05)  # the training changed it from the fresh value
    assert fresh["optimizer"].param_groups[0]["lr"] == saved_lr
    assert fresh["scheduler"].get_last_lr() == [saved_lr]
    assert fresh["scheduler"].last_epoch == saved_last_epoch
    assert fresh["scheduler"]._step_count == saved_step_count
    assert fresh["scaler"].get_scale() == saved_scale
    assert saved_scale == 2.0**14
