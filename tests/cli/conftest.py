"""Fixtures for the command-line tests: checkpoint folders written for real."""

from __future__ import annotations

import pathlib
import shutil
import time

import pytest
import torch
import yaml
from click.testing import CliRunner, Result

from recoverkit import Checkpointer, EpochCounter
from recoverkit.cli.main import cli

NUM_EPOCHS = 6


def valid_loss_of(epoch: int) -> float:
    """The valid_loss the fixture stores: lowest at epoch 4, so best and newest differ."""
    return round(abs(epoch - 4) * 0.1 + 0.2, 6)


def write_checkpoints(checkpoints_dir: pathlib.Path, num_epochs: int = NUM_EPOCHS) -> list[pathlib.Path]:
    """Save one end-of-epoch checkpoint per epoch; return their folders, oldest first.

    The model weights are filled with the epoch number, so averages are
    easy to predict.
    """
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    epochs = EpochCounter(limit=num_epochs)
    checkpointer = Checkpointer(checkpoints_dir, {"model": model, "optimizer": optimizer, "epochs": epochs})
    folders = []
    for epoch in epochs:
        with torch.no_grad():
            model.weight.fill_(float(epoch))
            model.bias.fill_(-float(epoch))
        meta = {"epoch": epoch, "valid_loss": valid_loss_of(epoch), "accuracy": 0.5 + epoch / 100}
        folders.append(checkpointer.save_checkpoint(meta=meta, name=f"epoch-{epoch}").path)
    return folders


def write_speechbrain_checkpoint(checkpoints_dir: pathlib.Path, name: str = "sb") -> pathlib.Path:
    """Write a checkpoint folder the way SpeechBrain does: no manifest in CKPT.yaml."""
    folder = checkpoints_dir / f"CKPT+{name}"
    folder.mkdir(parents=True)
    meta = {"valid_loss": 0.05, "unixtime": time.time() - 3600, "end-of-epoch": True}
    with open(folder / "CKPT.yaml", "w") as handle:
        yaml.dump(meta, handle)
    model = torch.nn.Linear(3, 1)
    torch.save(model.state_dict(), folder / "model.ckpt")
    return folder


def truncate(path: pathlib.Path, keep_bytes: int = 100) -> None:
    """Cut a file short, as a full disk or a killed copy would."""
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])


@pytest.fixture(scope="session")
def _checkpoints_template(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("template") / "checkpoints"
    write_checkpoints(folder)
    return folder


@pytest.fixture
def checkpoints_dir(tmp_path: pathlib.Path, _checkpoints_template: pathlib.Path) -> pathlib.Path:
    """A folder with one recoverkit checkpoint per epoch, named epoch-1 to epoch-6.

    Each test gets its own copy of one folder written per session, because
    writing checkpoints durably is slow on a busy disk.
    """
    folder = tmp_path / "checkpoints"
    shutil.copytree(_checkpoints_template, folder)
    return folder


@pytest.fixture
def empty_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``recoverkit ARGS`` in this process and return click's result."""
    runner = CliRunner(env={"COLUMNS": "250", **(env or {})})
    return runner.invoke(cli, [str(arg) for arg in args], catch_exceptions=False)


@pytest.fixture
def run():
    """``run("ls", folder)`` runs the command line in this process; see :func:`run_cli`."""
    return run_cli


@pytest.fixture
def speechbrain_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A folder with one SpeechBrain-written checkpoint, CKPT+sb."""
    folder = tmp_path / "speechbrain"
    write_speechbrain_checkpoint(folder)
    return folder


@pytest.fixture
def add_speechbrain_checkpoint():
    return write_speechbrain_checkpoint


@pytest.fixture
def truncate_file():
    return truncate
