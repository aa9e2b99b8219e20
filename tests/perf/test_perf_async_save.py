"""Functional tests of saving checkpoints in a background thread."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import torch

from recoverkit import Checkpointer, EpochCounter
from recoverkit.storage.integrity import check_checkpoint
from recoverkit.storage.layout import TMP_PREFIX


def _model_and_optimizer(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    _train_step(model, optimizer)
    return model, optimizer


def _train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad()
    model(torch.randn(16, 64)).square().sum().backward()
    optimizer.step()


def _file_bytes(checkpoint_path: pathlib.Path, name: str) -> bytes:
    return (checkpoint_path / f"{name}.ckpt").read_bytes()


class _Unpicklable:
    """Copies fine but cannot be written by torch.save, so the background write fails."""

    def __deepcopy__(self, memo: dict) -> _Unpicklable:
        return self

    def __reduce__(self) -> tuple:
        raise OSError(28, "No space left on device (simulated)")


class _BreakableState(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(4))
        self.broken = False

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        if self.broken:
            state["unwritable"] = _Unpicklable()
        return state


def test_async_files_match_sync_after_mutation(tmp_path):
    model, optimizer = _model_and_optimizer()
    sync = Checkpointer(tmp_path / "sync", {"model": model, "optimizer": optimizer})
    background = Checkpointer(
        tmp_path / "async", {"model": model, "optimizer": optimizer}, async_save=True
    )
    expected = sync.save_checkpoint(name="step-1")

    returned = background.save_checkpoint(name="step-1")
    # Training changes every tensor in place right after the call.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(-3.0)
    _train_step(model, optimizer)
    background.wait()

    assert _file_bytes(returned.path, "model") == _file_bytes(expected.path, "model")
    assert _file_bytes(returned.path, "optimizer") == _file_bytes(expected.path, "optimizer")
    assert returned == background.list_checkpoints()[0]


def test_async_keeps_shared_storage(tmp_path):
    tied = torch.nn.Module()
    tied.first = torch.nn.Linear(8, 8, bias=False)
    tied.second = torch.nn.Linear(8, 8, bias=False)
    tied.second.weight = tied.first.weight
    sync = Checkpointer(tmp_path / "sync", {"tied": tied})
    background = Checkpointer(tmp_path / "async", {"tied": tied}, async_save=True)
    expected = sync.save_checkpoint(name="tied")

    returned = background.save_checkpoint(name="tied")
    background.wait()

    assert _file_bytes(returned.path, "tied") == _file_bytes(expected.path, "tied")
    loaded = torch.load(returned.paramfiles["tied"], weights_only=True)
    assert loaded["first.weight"].data_ptr() == loaded["second.weight"].data_ptr()


def test_async_checkpoint_passes_verification(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpointer = Checkpointer(tmp_path, {"model": model, "optimizer": optimizer}, async_save=True)

    checkpoint = checkpointer.save_checkpoint(meta={"loss": 0.5})
    checkpointer.wait()

    assert check_checkpoint(checkpoint.path).ok
    assert checkpoint.meta["loss"] == 0.5


def test_async_runs_other_hooks_before_returning(tmp_path):
    model, _optimizer = _model_and_optimizer()
    epochs = EpochCounter(limit=5)
    checkpointer = Checkpointer(tmp_path, {"model": model, "epochs": epochs}, async_save=True)
    next(iter(epochs))

    checkpoint = checkpointer.save_checkpoint(name="epoch-1")
    hidden = [entry for entry in os.listdir(tmp_path) if entry.startswith(TMP_PREFIX)]
    # The counter is not copied, so its hook has already written into the
    # hidden folder of the save in flight (or the save is already published).
    written = [tmp_path / entry / "epochs.ckpt" for entry in hidden] + [checkpoint.paramfiles["epochs"]]
    assert any(path.exists() for path in written)
    checkpointer.wait()
    assert checkpoint.paramfiles["epochs"].read_text().strip() == "1"


def test_second_async_save_waits_for_first(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpointer = Checkpointer(tmp_path, {"model": model, "optimizer": optimizer}, async_save=True)

    first = checkpointer.save_checkpoint(name="first")
    second = checkpointer.save_checkpoint(name="second")

    assert first.path.is_dir()
    checkpointer.wait()
    assert second.path.is_dir()


def test_async_error_raised_at_wait(tmp_path):
    state = _BreakableState()
    checkpointer = Checkpointer(tmp_path, {"state": state}, async_save=True)
    state.broken = True

    checkpointer.save_checkpoint(name="broken")

    with pytest.raises(OSError, match="simulated"):
        checkpointer.wait()
    assert os.listdir(tmp_path) == [".recoverkit.lock"]
    checkpointer.wait()  # the error is raised once


def test_async_error_raised_at_next_save(tmp_path):
    state = _BreakableState()
    checkpointer = Checkpointer(tmp_path, {"state": state}, async_save=True)
    state.broken = True
    checkpointer.save_checkpoint(name="broken")
    state.broken = False

    with pytest.raises(OSError, match="simulated"):
        checkpointer.save_checkpoint(name="after")

    retried = checkpointer.save_checkpoint(name="retried")
    checkpointer.wait()
    assert [checkpoint.path for checkpoint in checkpointer.list_checkpoints()] == [retried.path]


def test_failed_async_save_deletes_nothing(tmp_path):
    state = _BreakableState()
    checkpointer = Checkpointer(tmp_path, {"state": state}, async_save=True)
    kept = checkpointer.save_checkpoint(name="good")
    checkpointer.wait()
    state.broken = True

    checkpointer.save_and_keep_only(name="broken", num_to_keep=1)

    with pytest.raises(OSError, match="simulated"):
        checkpointer.wait()
    assert [checkpoint.path for checkpoint in checkpointer.list_checkpoints()] == [kept.path]


def test_async_keep_only_deletes_after_publish(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpointer = Checkpointer(tmp_path, {"model": model, "optimizer": optimizer}, async_save=True)
    for step in range(3):
        checkpointer.save_and_keep_only(meta={"step": step}, num_to_keep=1)

    listed = checkpointer.list_checkpoints()

    assert [checkpoint.meta["step"] for checkpoint in listed] == [2]


def test_recovery_waits_for_async_save(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpointer = Checkpointer(tmp_path, {"model": model, "optimizer": optimizer}, async_save=True)
    expected = {key: value.clone() for key, value in model.state_dict().items()}
    checkpointer.save_checkpoint()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()

    recovered = checkpointer.recover_if_possible()

    assert recovered is not None
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


_EXIT_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from recoverkit import Checkpointer

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(16)])
    checkpointer = Checkpointer(sys.argv[1], {"model": model}, async_save=True)
    checkpointer.save_checkpoint(name="at-exit")
    print("returned", flush=True)
    """
)


def test_process_exit_waits_for_async_save(tmp_path):
    script = tmp_path / "save_and_exit.py"
    script.write_text(_EXIT_SCRIPT)
    checkpoints_dir = tmp_path / "checkpoints"

    completed = subprocess.run(
        [sys.executable, str(script), str(checkpoints_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "returned"
    published = checkpoints_dir / "CKPT+at-exit"
    assert check_checkpoint(published).ok
    torch.manual_seed(0)
    expected = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(16)])
    loaded = torch.load(published / "model.ckpt", weights_only=True)
    assert torch.equal(loaded["15.weight"], expected.state_dict()["15.weight"])


def test_async_reuses_buffers_with_identical_files(tmp_path):
    model, optimizer = _model_and_optimizer()
    recoverables = {"model": model, "optimizer": optimizer}
    background = Checkpointer(tmp_path / "async", recoverables, async_save=True)
    sync = Checkpointer(tmp_path / "sync", recoverables)
    background.save_checkpoint(name="first")
    background.wait()
    _train_step(model, optimizer)
    expected = sync.save_checkpoint(name="second")

    returned = background.save_checkpoint(name="second")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(5.0)
    background.wait()

    assert _file_bytes(returned.path, "model") == _file_bytes(expected.path, "model")
    assert _file_bytes(returned.path, "optimizer") == _file_bytes(expected.path, "optimizer")


def test_snapshot_copies_into_released_buffers():
    from recoverkit.storage.async_save import SnapshotBuffers, snapshot_state

    buffers = SnapshotBuffers()
    state = {"weight": torch.ones(3, 4), "steps": torch.tensor(2)}
    first = snapshot_state(state, buffers)
    buffers.release(first)
    state["weight"].mul_(7.0)

    second = snapshot_state(state, buffers)

    assert second["weight"].data_ptr() == first["weight"].data_ptr()
    assert torch.equal(second["weight"], torch.full((3, 4), 7.0))
    assert second["weight"].data_ptr() != state["weight"].data_ptr()
