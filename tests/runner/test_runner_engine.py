"""The Trainer on a tiny synthetic task: a crash mid-epoch resumes exactly, with every stateful object."""

from __future__ import annotations

import pathlib

import pytest
import torch
from torch.utils.data import TensorDataset

from recoverkit import Checkpointer
from recoverkit.config import SaveSchedule
from recoverkit.runner import Trainer, TrainingTask, seed_everything
from recoverkit.runner.progress import LogProgress


class SimulatedCrash(Exception):
    pass


def _build(folder: pathlib.Path, crash_at_step: int | None = None) -> Trainer:
    seed_everything(4)
    generator = torch.Generator().manual_seed(9)
    inputs = torch.randn(40, 3, generator=generator)
    targets = inputs.sum(dim=1, keepdim=True)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    calls = {"count": 0}

    def loss(outputs: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        if model.training:
            calls["count"] += 1
            if calls["count"] == crash_at_step:
                raise SimulatedCrash
        return torch.nn.functional.mse_loss(outputs, wanted)

    task = TrainingTask(
        model=model,
        optimizer=optimizer,
        loss=loss,
        train_data=TensorDataset(inputs, targets),
        valid_data=TensorDataset(inputs[:10], targets[:10]),
        epochs=3,
        batch_size=6,
        seed=2,
        lr_scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.7),
        lr_scheduler_interval="step",
        grad_scaler=torch.amp.GradScaler("cpu"),
        max_grad_norm=1.0,
    )
    checkpointer = Checkpointer(folder)
    return Trainer(task, checkpointer, SaveSchedule(every_n_steps=4), progress=LogProgress())


def test_trainer_registers_resume_state(tmp_path: pathlib.Path) -> None:
    trainer = _build(tmp_path)

    names = set(trainer.checkpointer.recoverables)

    assert names == {"model", "optimizer", "epoch_counter", "lr_scheduler", "grad_scaler", "loop_state", "rng"}


def test_trainer_crash_resume_exact(tmp_path: pathlib.Path) -> None:
    plain = _build(tmp_path / "plain")
    plain.fit()
    plain_rng = torch.get_rng_state()

    crashing = _build(tmp_path / "crash", crash_at_step=11)  # epoch 2, batch 4 of 7
    with pytest.raises(SimulatedCrash):
        crashing.fit()
    resumed = _build(tmp_path / "crash")
    resumed.fit()
    resumed_rng = torch.get_rng_state()

    assert resumed.resumed_from is not None
    assert resumed.resumed_from.meta["step"] == 8
    assert resumed.loop_state.step == plain.loop_state.step == 21
    assert resumed.loop_state.history == plain.loop_state.history
    for name, tensor in plain.task.model.state_dict().items():
        assert torch.equal(tensor, resumed.task.model.state_dict()[name]), name
    assert resumed.task.lr_scheduler.state_dict() == plain.task.lr_scheduler.state_dict()
    assert resumed.task.grad_scaler.state_dict() == plain.task.grad_scaler.state_dict()
    assert torch.equal(resumed_rng, plain_rng)
