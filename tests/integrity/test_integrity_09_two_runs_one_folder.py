"""Case 9: a second run pointed at the same checkpoints folder fails fast."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from recoverkit import Checkpointer, CheckpointLockedError

FIRST_RUN = textwrap.dedent(
    """
    import pathlib, sys, time, torch
    from recoverkit import Checkpointer

    checkpointer = Checkpointer(sys.argv[1], {"model": torch.nn.Linear(2, 2)})
    checkpointer.acquire_lock()
    pathlib.Path(sys.argv[2]).write_text("locked")
    time.sleep(600)
    """
)


@pytest.fixture
def first_run(tmp_path):
    checkpoints_dir = tmp_path / "ckpts"
    ready = tmp_path / "ready"
    script = tmp_path / "first_run.py"
    script.write_text(FIRST_RUN)
    process = subprocess.Popen([sys.executable, str(script), str(checkpoints_dir), str(ready)])
    deadline = time.monotonic() + 300
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the first run never took the lock"
    yield checkpoints_dir, process
    process.kill()
    process.wait()


def test_second_run_fails_naming_folder_and_process(first_run):
    checkpoints_dir, process = first_run
    second = Checkpointer(checkpoints_dir, {"model": torch.nn.Linear(2, 2)})

    with pytest.raises(CheckpointLockedError) as raised:
        second.acquire_lock()

    message = str(raised.value)
    assert str(checkpoints_dir) in message
    assert f"pid {process.pid}" in message


def test_second_run_writes_nothing(first_run):
    checkpoints_dir, _process = first_run
    before = sorted(os.listdir(checkpoints_dir))
    second = Checkpointer(checkpoints_dir, {"model": torch.nn.Linear(2, 2)})

    with pytest.raises(CheckpointLockedError):
        second.save_checkpoint()
    with pytest.raises(CheckpointLockedError):
        second.delete_checkpoints(num_to_keep=0)

    assert sorted(os.listdir(checkpoints_dir)) == before


def test_lock_released_when_first_run_dies(first_run):
    checkpoints_dir, process = first_run
    process.kill()
    process.wait()
    second = Checkpointer(checkpoints_dir, {"model": torch.nn.Linear(2, 2)})

    second.acquire_lock()
    checkpoint = second.save_checkpoint()

    assert second.list_checkpoints() == [checkpoint]
