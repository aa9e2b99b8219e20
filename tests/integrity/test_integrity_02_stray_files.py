"""Case 2: stray files and foreign folders are not listed and never deleted."""

from __future__ import annotations

import pathlib

import torch

from recoverkit import Checkpointer

STRAY_FILES = {
    "CKPT.yaml~": b"editor backup of a meta file",
    ".#model.ckpt": b"emacs lock file",
    "train.log": b"epoch 1 loss 0.3\n",
    "tmp/scratch.bin": b"\x00\x01",
    "CKPT+notes/CKPT.yaml": b"comment: a folder with a meta file but no parameter files\n",
    "CKPT+backup~/model.ckpt": b"copied by hand",
    "CKPT+empty/.keep": b"",
}


def plant_stray_files(checkpoints_dir: pathlib.Path) -> None:
    for relative, data in STRAY_FILES.items():
        path = checkpoints_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_listing_ignores_stray_files(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    plant_stray_files(tmp_path)
    saved = checkpointer.save_checkpoint(meta={"step": 1})
    (saved.path / "model.ckpt~").write_bytes(b"editor backup inside a checkpoint")

    listed = checkpointer.list_checkpoints()

    assert [checkpoint.path for checkpoint in listed] == [saved.path]
    assert checkpointer.recover_if_possible() == saved


def test_retention_never_deletes_stray_files(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    plant_stray_files(tmp_path)

    for step in range(4):
        checkpointer.save_and_keep_only(meta={"step": step}, num_to_keep=1)
    checkpointer.delete_checkpoints(num_to_keep=0)

    assert checkpointer.list_checkpoints() == []
    for relative, data in STRAY_FILES.items():
        assert (tmp_path / relative).read_bytes() == data, relative


def test_foreign_folder_takes_no_kept_place(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    plant_stray_files(tmp_path)

    checkpointer.save_and_keep_only(meta={"step": 1}, num_to_keep=1)
    checkpointer.save_and_keep_only(meta={"step": 2}, num_to_keep=1)

    assert [checkpoint.meta["step"] for checkpoint in checkpointer.list_checkpoints()] == [2]
