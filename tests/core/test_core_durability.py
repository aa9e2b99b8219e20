"""A save flushes every file and folder to disk before and after its one atomic rename.

A SIGKILL test cannot see a missing fsync, because the page cache survives a
killed process. These tests therefore record the system calls of one save.
"""

import os
import pathlib

import pytest
import torch

from recoverkit import Checkpointer, EpochCounter


@pytest.fixture
def recorded_calls(monkeypatch):
    """Record (kind, path...) for every fsync and rename, in order."""
    calls = []
    real_fsync = os.fsync
    real_rename = os.rename

    def recording_fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def recording_rename(source, destination, *args, **kwargs):
        calls.append(("rename", os.fspath(source), os.fspath(destination)))
        return real_rename(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "rename", recording_rename)
    return calls


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name file descriptors")
def test_save_flushes_then_renames_once(tmp_path, recorded_calls):
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(3, 2), "counter": EpochCounter(4)})

    checkpoint = checkpointer.save_checkpoint(meta={"step": 1})

    renames = [call for call in recorded_calls if call[0] == "rename"]
    assert len(renames) == 1
    _, source, destination = renames[0]
    assert pathlib.Path(destination) == checkpoint.path
    assert pathlib.Path(source).name.startswith(".tmp+")
    assert pathlib.Path(source).parent == tmp_path

    rename_index = recorded_calls.index(renames[0])
    flushed_before = {call[1] for call in recorded_calls[:rename_index] if call[0] == "fsync"}
    flushed_after = {call[1] for call in recorded_calls[rename_index + 1 :] if call[0] == "fsync"}
    for name in ("model.ckpt", "counter.ckpt", "CKPT.yaml"):
        assert os.path.join(source, name) in flushed_before, name
    assert source in flushed_before
    assert str(tmp_path) in flushed_after


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name file descriptors")
def test_delete_hides_with_one_rename_first(tmp_path, recorded_calls):
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(3, 2)})
    first = checkpointer.save_checkpoint(meta={"step": 1})
    checkpointer.save_checkpoint(meta={"step": 2})
    recorded_calls.clear()

    checkpointer.delete_checkpoints(num_to_keep=1)

    renames = [call for call in recorded_calls if call[0] == "rename"]
    assert len(renames) == 1
    assert pathlib.Path(renames[0][1]) == first.path
    assert pathlib.Path(renames[0][2]).name.startswith(".trash+")
    assert not first.path.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name file descriptors")
def test_save_flushes_hook_subfolders(tmp_path, recorded_calls):
    def save_folder(obj, path):
        os.makedirs(path)
        (pathlib.Path(path) / "shard-0.bin").write_bytes(b"\x00" * 16)

    checkpointer = Checkpointer(tmp_path)
    checkpointer.add_recoverable("sharded", object(), custom_save_hook=save_folder, custom_load_hook=lambda obj, path: None)

    checkpointer.save_checkpoint()

    source = next(call[1] for call in recorded_calls if call[0] == "rename")
    flushed = {call[1] for call in recorded_calls if call[0] == "fsync"}
    assert os.path.join(source, "sharded.ckpt") in flushed
    assert os.path.join(source, "sharded.ckpt", "shard-0.bin") in flushed
