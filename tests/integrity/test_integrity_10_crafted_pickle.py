"""Case 10: a checkpoint file carrying a crafted pickle does not execute it."""

from __future__ import annotations

import pathlib
import pickle

import pytest
import torch

from recoverkit import Checkpointer, CorruptCheckpointError, UnsafeCheckpointFileError
from recoverkit.errors import CheckpointFormatError
from recoverkit.storage.manifest import build_manifest
from recoverkit.storage.meta import MANIFEST_KEY, dump_meta, parse_meta


class Payload:
    """Unpickling it creates a marker file, standing in for arbitrary code."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def plant_payload(checkpoint_path: pathlib.Path, marker: pathlib.Path, zip_format: bool) -> None:
    """Replace model.ckpt with the payload and rewrite the manifest as an attacker could."""
    target = checkpoint_path / "model.ckpt"
    target.unlink()
    if zip_format:
        torch.save({"weight": Payload(marker)}, target)
    else:
        target.write_bytes(pickle.dumps({"weight": Payload(marker)}))
    meta_path = checkpoint_path / "CKPT.yaml"
    meta = parse_meta(meta_path.read_text())
    meta[MANIFEST_KEY] = build_manifest(checkpoint_path, ["model"], durable=False)
    meta_path.write_text(dump_meta(meta))


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "raw-pickle"])
def test_payload_not_executed(tmp_path, zip_format):
    marker = tmp_path / "executed"
    model = torch.nn.Linear(2, 2)
    checkpointer = Checkpointer(tmp_path / "ckpts", {"model": model}, strict_recovery=True)
    checkpoint = checkpointer.save_checkpoint()
    plant_payload(checkpoint.path, marker, zip_format)

    with pytest.raises(CorruptCheckpointError) as raised:
        checkpointer.recover_if_possible()

    assert not marker.exists()
    # torch names the rejected global in a torch.save archive; a bare pickle
    # is not a torch.save file at all, so it is reported as corrupted.
    expected = UnsafeCheckpointFileError if zip_format else CheckpointFormatError
    assert isinstance(raised.value.__cause__, expected)


def test_recovery_falls_back_past_payload(tmp_path):
    marker = tmp_path / "executed"
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    saved_weight = model.weight.detach().clone()
    checkpointer = Checkpointer(tmp_path / "ckpts", {"model": model})
    older = checkpointer.save_checkpoint(meta={"step": 1})
    newer = checkpointer.save_checkpoint(meta={"step": 2})
    plant_payload(newer.path, marker, zip_format=True)
    with torch.no_grad():
        model.weight.zero_()

    recovered = checkpointer.recover_if_possible()

    assert not marker.exists()
    assert recovered == older
    assert torch.equal(model.weight, saved_weight)
    assert newer.path.exists()
