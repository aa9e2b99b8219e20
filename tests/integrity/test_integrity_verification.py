"""Verification against the manifest, recovery fallback, strict mode and retention."""

from __future__ import annotations

import logging

import pytest
import torch

from recoverkit import Checkpointer, CorruptCheckpointError
from recoverkit.storage.integrity import check_checkpoint, verify_checkpoint_dir


def make_checkpointer(checkpoints_dir, seed: int = 0, **options) -> tuple[Checkpointer, torch.nn.Module]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 4)
    return Checkpointer(checkpoints_dir, {"model": model}, **options), model


def save_steps(checkpointer: Checkpointer, model: torch.nn.Module, steps) -> dict:
    saved = {}
    for step in steps:
        with torch.no_grad():
            model.weight.fill_(float(step))
        saved[step] = checkpointer.save_checkpoint(meta={"step": step})
    return saved


def flip_bit(path, byte_index: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[byte_index] ^= 0x01
    path.write_bytes(bytes(data))


def test_intact_checkpoint_verifies(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path)
    checkpoint = save_steps(checkpointer, model, [1])[1]

    result = verify_checkpoint_dir(checkpoint.path)

    assert result.ok
    assert result.has_manifest
    assert result.problems == ()


@pytest.mark.parametrize(
    ("damage", "expected_text"),
    [
        ("truncate", "(truncated)"),
        ("zero-length", "0 bytes (zero-length)"),
        ("missing", "no file (missing)"),
        ("bitflip", "(contents altered)"),
        ("append", "bytes, found"),
    ],
)
def test_damage_reported_with_file(tmp_path, damage, expected_text):
    checkpointer, model = make_checkpointer(tmp_path)
    checkpoint = save_steps(checkpointer, model, [1])[1]
    path = checkpoint.paramfiles["model"]
    size = path.stat().st_size
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: size // 2])
    elif damage == "zero-length":
        path.write_bytes(b"")
    elif damage == "missing":
        path.unlink()
    elif damage == "bitflip":
        flip_bit(path)
    else:
        path.write_bytes(path.read_bytes() + b"tail")

    result = verify_checkpoint_dir(checkpoint.path)

    assert not result.ok
    assert len(result.problems) == 1
    assert result.problems[0].file == "model.ckpt"
    assert expected_text in str(result.problems[0])
    with pytest.raises(CorruptCheckpointError, match="model.ckpt"):
        check_checkpoint(checkpoint.path)


def test_sizes_only_misses_bitflip(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path)
    checkpoint = save_steps(checkpointer, model, [1])[1]
    flip_bit(checkpoint.paramfiles["model"])

    assert verify_checkpoint_dir(checkpoint.path, checksums=False).ok
    assert not verify_checkpoint_dir(checkpoint.path, checksums=True).ok


def test_garbage_meta_reported(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path)
    checkpoint = save_steps(checkpointer, model, [1])[1]
    (checkpoint.path / "CKPT.yaml").write_text("- just\n- a list\n")

    result = verify_checkpoint_dir(checkpoint.path)

    assert not result.ok
    assert result.problems[0].file == "CKPT.yaml"
    assert "garbage" in str(result.problems[0])


def test_recovery_falls_back_with_warning(tmp_path, caplog):
    checkpointer, model = make_checkpointer(tmp_path)
    saved = save_steps(checkpointer, model, [1, 2, 3])
    flip_bit(saved[3].paramfiles["model"])

    with caplog.at_level(logging.WARNING, logger="recoverkit"):
        recovered = checkpointer.recover_if_possible()

    assert recovered == saved[2]
    assert torch.all(model.weight == 2.0)
    assert saved[3].path.name in caplog.text
    assert "contents altered" in caplog.text
    assert saved[3].path.exists()


def test_fallback_follows_min_key(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path)
    losses = {1: 0.5, 2: 0.1, 3: 0.3}
    saved = {}
    for step, loss in losses.items():
        with torch.no_grad():
            model.weight.fill_(float(step))
        saved[step] = checkpointer.save_checkpoint(meta={"step": step, "loss": loss})
    saved[2].paramfiles["model"].write_bytes(b"")

    recovered = checkpointer.recover_if_possible(min_key="loss")

    assert recovered == saved[3]
    assert torch.all(model.weight == 3.0)


def test_strict_recovery_raises(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path, strict_recovery=True)
    saved = save_steps(checkpointer, model, [1, 2])
    saved[2].paramfiles["model"].unlink()

    with pytest.raises(CorruptCheckpointError) as raised:
        checkpointer.recover_if_possible()

    assert saved[2].path.name in str(raised.value)
    assert "model.ckpt" in str(raised.value)
    assert torch.all(model.weight == 2.0)  # nothing was loaded


def test_every_checkpoint_broken_raises(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path)
    saved = save_steps(checkpointer, model, [1, 2])
    for checkpoint in saved.values():
        flip_bit(checkpoint.paramfiles["model"])

    with pytest.raises(CorruptCheckpointError) as raised:
        checkpointer.recover_if_possible()

    assert saved[1].path.name in str(raised.value)
    assert saved[2].path.name in str(raised.value)


def test_verification_off_loads_damaged_file(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path, verify_files=False)
    saved = save_steps(checkpointer, model, [1, 2])
    path = saved[2].paramfiles["model"]
    data = path.read_bytes()
    # Change one weight in the stored tensor data (float32 2.0 -> 3.0) without breaking the file.
    position = data.index(torch.tensor(2.0).numpy().tobytes())
    path.write_bytes(data[:position] + torch.tensor(3.0).numpy().tobytes() + data[position + 4 :])

    recovered = checkpointer.recover_if_possible()

    assert recovered == saved[2]
    assert model.weight.flatten()[0].item() == 3.0


def test_retention_keeps_and_skips_broken(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path)
    saved = save_steps(checkpointer, model, [1, 2])
    flip_bit(saved[2].paramfiles["model"])

    for step in (3, 4):
        with torch.no_grad():
            model.weight.fill_(float(step))
        checkpointer.save_and_keep_only(meta={"step": step}, num_to_keep=2)

    steps = sorted(checkpoint.meta["step"] for checkpoint in checkpointer.list_checkpoints())
    assert steps == [2, 3, 4]  # 2 is broken: neither deleted nor one of the two kept
    checkpointer.delete_checkpoints(num_to_keep=0)
    assert [checkpoint.meta["step"] for checkpoint in checkpointer.list_checkpoints()] == [2]


def test_retention_sees_damage_after_caching(tmp_path):
    checkpointer, model = make_checkpointer(tmp_path)
    saved = save_steps(checkpointer, model, [1, 2])
    checkpointer.delete_checkpoints(num_to_keep=2)  # caches both results as valid
    saved[1].paramfiles["model"].write_bytes(b"")

    checkpointer.delete_checkpoints(num_to_keep=1)

    assert saved[1].path.exists()
    assert saved[2].path.exists()
