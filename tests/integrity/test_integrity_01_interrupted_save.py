"""Case 1: an interrupted save leaves the newest complete checkpoint recoverable.

The save is interrupted by SIGKILL, by an exception inside a custom saver and
by a full disk. Each time the checkpoint saved before it is recovered with
byte-identical files, and no half-written folder is listed.
"""

from __future__ import annotations

import errno
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import recoverkit.hooks.torch_hooks as torch_hooks_module
from recoverkit import Checkpointer


def make_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3)


def snapshot_files(folder: pathlib.Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def hidden_folders(checkpoints_dir: pathlib.Path) -> list[str]:
    return [path.name for path in checkpoints_dir.iterdir() if path.name.startswith(".") and path.is_dir()]


def test_exception_in_custom_saver_keeps_previous(tmp_path):
    model = make_model(0)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    first = checkpointer.save_checkpoint(meta={"step": 1})
    saved_files = snapshot_files(first.path)
    saved_weight = model.weight.detach().clone()

    def failing_saver(obj, path):
        pathlib.Path(path).write_bytes(b"half of a file")
        raise RuntimeError("saver crashed")

    checkpointer.add_recoverable("extra", make_model(1), custom_save_hook=failing_saver, optional_load=True)
    with pytest.raises(RuntimeError, match="saver crashed"):
        checkpointer.save_checkpoint(meta={"step": 2})
    with torch.no_grad():
        model.weight.fill_(7.0)

    assert checkpointer.list_checkpoints() == [first]
    assert hidden_folders(tmp_path) == []
    assert checkpointer.recover_if_possible() == first
    assert snapshot_files(first.path) == saved_files
    assert torch.equal(model.weight, saved_weight)


@pytest.mark.parametrize("failing_file", ["parameter file", "meta file"])
def test_disk_full_keeps_previous(tmp_path, monkeypatch, failing_file):
    model = make_model(0)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    first = checkpointer.save_checkpoint(meta={"step": 1})
    saved_files = snapshot_files(first.path)
    saved_weight = model.weight.detach().clone()

    def full_disk(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing_file == "parameter file":
        monkeypatch.setattr(torch_hooks_module, "save_torch_file", full_disk)
    else:
        import recoverkit.checkpointer as checkpointer_module

        monkeypatch.setattr(checkpointer_module, "write_file_durably", full_disk)
    with torch.no_grad():
        model.weight.fill_(3.0)
    with pytest.raises(OSError) as raised:
        checkpointer.save_checkpoint(meta={"step": 2})
    monkeypatch.undo()

    assert raised.value.errno == errno.ENOSPC
    assert checkpointer.list_checkpoints() == [first]
    assert hidden_folders(tmp_path) == []
    assert checkpointer.recover_if_possible() == first
    assert snapshot_files(first.path) == saved_files
    assert torch.equal(model.weight, saved_weight)


KILLED_RUN = textwrap.dedent(
    """
    import pathlib, sys, time, torch
    from recoverkit import Checkpointer

    checkpoints_dir, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    checkpointer = Checkpointer(checkpoints_dir, {"model": model})
    checkpointer.save_checkpoint(meta={"step": 1})

    def slow_saver(obj, path):
        pathlib.Path(path).write_bytes(b"partial")
        ready.write_text("saving")
        time.sleep(600)

    with torch.no_grad():
        model.weight.fill_(5.0)
    checkpointer.add_recoverable("slow", model, custom_save_hook=slow_saver, custom_load_hook=lambda o, p: None)
    checkpointer.save_checkpoint(meta={"step": 2})
    """
)


def test_sigkill_during_save_keeps_previous(tmp_path):
    checkpoints_dir = tmp_path / "ckpts"
    ready = tmp_path / "ready"
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    process = subprocess.Popen([sys.executable, str(script), str(checkpoints_dir), str(ready)])
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the run never reached its second save"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()

    model = make_model(1)
    checkpointer = Checkpointer(checkpoints_dir, {"model": model})
    listed = checkpointer.list_checkpoints()
    recovered = checkpointer.recover_if_possible()

    assert len(listed) == 1
    assert listed[0].meta["step"] == 1
    assert recovered == listed[0]
    assert torch.equal(model.weight, make_model(0).weight)
    assert len(hidden_folders(checkpoints_dir)) == 1  # the killed save, hidden until the next save
    checkpointer.save_checkpoint(meta={"step": 3})
    assert hidden_folders(checkpoints_dir) == []
