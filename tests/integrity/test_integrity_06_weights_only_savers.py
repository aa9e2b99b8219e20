"""Case 6: custom savers that write objects weights-only loading rejects.

The save fails at once, with a message saying what to convert, and publishes
nothing. Nothing turns weights-only loading off: the converted values save
and load, and a file that still contains such objects is rejected at loading.
"""

from __future__ import annotations

import pathlib

import numpy
import pytest
import torch
from omegaconf import OmegaConf

from recoverkit import Checkpointer, UnsafeCheckpointFileError

UNSAFE_VALUES = {
    "numpy-scalar": (lambda: numpy.float64(0.25), ".item()"),
    "numpy-array": (lambda: numpy.arange(3), "torch.as_tensor()"),
    "path": (lambda: pathlib.Path("data/train.csv"), "str()"),
    "omegaconf": (lambda: OmegaConf.create({"lr": 0.1}), "OmegaConf.to_container"),
}


class Settings:
    """A recoverable whose custom hooks save one value with torch.save."""

    def __init__(self, value) -> None:
        self.value = value


def save_settings(obj: Settings, path) -> None:
    torch.save({"value": obj.value}, path)


def load_settings(obj: Settings, path) -> None:
    obj.value = torch.load(path, weights_only=True)["value"]


def checkpointer_for(checkpoints_dir, settings: Settings) -> Checkpointer:
    checkpointer = Checkpointer(checkpoints_dir)
    checkpointer.add_recoverable("settings", settings, custom_save_hook=save_settings, custom_load_hook=load_settings)
    return checkpointer


@pytest.mark.parametrize("async_save", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("kind", list(UNSAFE_VALUES))
def test_unsafe_value_fails_save(tmp_path, kind, async_save):
    make_value, advice = UNSAFE_VALUES[kind]
    checkpointer = checkpointer_for(tmp_path, Settings(make_value()))
    checkpointer_async = Checkpointer(tmp_path, async_save=True) if async_save else None
    if checkpointer_async is not None:
        checkpointer_async.add_recoverable(
            "settings", Settings(make_value()), custom_save_hook=save_settings, custom_load_hook=load_settings
        )
        checkpointer = checkpointer_async

    with pytest.raises(UnsafeCheckpointFileError) as raised:
        checkpointer.save_checkpoint()

    message = str(raised.value)
    assert "'settings'" in message
    assert advice in message
    assert checkpointer.list_checkpoints() == []
    assert [path.name for path in tmp_path.iterdir() if not path.name.startswith(".recoverkit")] == []


@pytest.mark.parametrize(
    ("kind", "converted", "expected"),
    [
        ("numpy-scalar", lambda: numpy.float64(0.25).item(), 0.25),
        ("numpy-array", lambda: torch.as_tensor(numpy.arange(3)).tolist(), [0, 1, 2]),
        ("path", lambda: str(pathlib.Path("data/train.csv")), "data/train.csv"),
        ("omegaconf", lambda: OmegaConf.to_container(OmegaConf.create({"lr": 0.1}), resolve=True), {"lr": 0.1}),
    ],
)
def test_converted_value_saves_and_loads(tmp_path, kind, converted, expected):
    checkpointer_for(tmp_path, Settings(converted())).save_checkpoint()
    restored = Settings(None)

    checkpointer_for(tmp_path, restored).recover_if_possible()

    assert restored.value == expected


def test_planted_unsafe_file_rejected_at_load(tmp_path):
    # A file written outside recoverkit (so never checked at save time) still loads weights-only.
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(2, 2)}, verify_files=False, strict_recovery=True)
    checkpoint = checkpointer.save_checkpoint()
    torch.save({"weight": numpy.float64(1.0)}, checkpoint.paramfiles["model"])

    with pytest.raises(RuntimeError) as raised:
        checkpointer.recover_if_possible()

    assert isinstance(raised.value.__cause__, UnsafeCheckpointFileError)
