"""RetentionPolicy: validation, keep_every_n_epochs and apply()."""

from __future__ import annotations

import logging
import pathlib

import pytest
import torch

from recoverkit import Checkpoint, Checkpointer
from recoverkit.errors import InvalidRetentionPolicyError
from recoverkit.retention.policies import IMPORTANCE_KEYS, KeepEveryNEpochs, RetentionPolicy, register_importance_key


def _checkpoint(epoch: object, end_of_epoch: bool = True) -> Checkpoint:
    return Checkpoint(pathlib.Path(f"ckpt-{epoch}"), {"epoch": epoch, "end-of-epoch": end_of_epoch}, {})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_to_keep": 0}, "num_to_keep"),
        ({"num_to_keep": -1}, "num_to_keep"),
        ({"keep_recent": False}, "keep_recent"),
        ({"keep_every_n_epochs": 0}, "keep_every_n_epochs"),
        ({"min_keys": ("",)}, "min_keys"),
        ({"importance_keys": ("recency",)}, "importance_keys"),
        ({"ckpt_predicate": "not callable"}, "ckpt_predicate"),
    ],
)
def test_invalid_policy_names_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidRetentionPolicyError) as raised:
        RetentionPolicy(**kwargs)

    assert raised.value.field == field
    assert field in str(raised.value)


def test_num_to_keep_zero_allowed_with_protection() -> None:
    policy = RetentionPolicy(num_to_keep=0, keep_every_n_epochs=5)

    assert policy.num_to_keep == 0


def test_keep_every_n_epochs_protects_multiples() -> None:
    keep = KeepEveryNEpochs(5)

    assert keep(_checkpoint(10)) is False
    assert keep(_checkpoint(11)) is True
    assert keep(_checkpoint(10, end_of_epoch=False)) is True
    assert keep(_checkpoint(0)) is True
    assert keep(_checkpoint("10")) is True


def test_keep_every_n_epochs_combines_with_predicate() -> None:
    keep = KeepEveryNEpochs(2, inner=lambda ckpt: ckpt.meta["epoch"] > 3)

    assert keep(_checkpoint(3)) is False
    assert keep(_checkpoint(4)) is False
    assert keep(_checkpoint(5)) is True


def test_apply_deletes_per_policy(tmp_path: pathlib.Path) -> None:
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(1, 1)})
    for epoch, loss in enumerate([0.4, 0.1, 0.3, 0.2, 0.5, 0.6], start=1):
        checkpointer.save_checkpoint(meta={"epoch": epoch, "valid_loss": loss})
    policy = RetentionPolicy(num_to_keep=1, min_keys=("valid_loss",), keep_every_n_epochs=5)

    policy.apply(checkpointer, verbosity=logging.DEBUG)

    epochs = sorted(ckpt.meta["epoch"] for ckpt in checkpointer.list_checkpoints())
    # Epoch 2 has the lowest loss, epoch 6 is the newest, epoch 5 is protected.
    assert epochs == [2, 5, 6]


def test_save_and_keep_only_kwargs_call_checkpointer(tmp_path: pathlib.Path) -> None:
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(1, 1)})
    policy = RetentionPolicy(num_to_keep=2)
    for epoch in range(1, 5):
        checkpointer.save_and_keep_only(meta={"epoch": epoch}, **policy.save_and_keep_only_kwargs())

    epochs = sorted(ckpt.meta["epoch"] for ckpt in checkpointer.list_checkpoints())

    assert epochs == [3, 4]


def test_registered_importance_key_is_usable(tmp_path: pathlib.Path) -> None:
    from recoverkit.config import load_checkpointer

    register_importance_key("test_epoch", lambda ckpt: ckpt.meta.get("epoch", 0))
    try:
        loaded = load_checkpointer(
            {
                "checkpointer": {
                    "checkpoints_dir": str(tmp_path),
                    "retention": {"keep_recent": False, "importance_keys": ["test_epoch"], "num_to_keep": 1},
                }
            }
        )
        for epoch in (3, 9, 1):
            loaded.save_and_keep_only(meta={"epoch": epoch})
    finally:
        IMPORTANCE_KEYS.pop("test_epoch")

    assert [ckpt.meta["epoch"] for ckpt in loaded.checkpointer.list_checkpoints()] == [9]
