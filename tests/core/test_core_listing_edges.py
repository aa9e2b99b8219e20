"""Listing stays true to disk for folders that change or lack a recency value."""

import torch
import yaml

from recoverkit import Checkpointer


def write_meta(folder, meta):
    folder.mkdir(parents=True)
    (folder / "CKPT.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")


def test_meta_without_unixtime_is_ignored(tmp_path):
    model = torch.nn.Linear(2, 1)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    saved = checkpointer.save_checkpoint(meta={"step": 1})
    odd = tmp_path / "CKPT+no-time"
    write_meta(odd, {"end-of-epoch": True})
    torch.save(model.state_dict(), odd / "model.ckpt")

    listed = [checkpoint.path for checkpoint in checkpointer.list_checkpoints()]
    recovered = checkpointer.recover_if_possible()

    assert listed == [saved.path]
    assert recovered is not None
    assert recovered.path == saved.path


def test_folder_completed_later_is_listed(tmp_path):
    model = torch.nn.Linear(2, 1)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    folder = tmp_path / "CKPT+written-by-other-tool"
    write_meta(folder, {"unixtime": 1.0, "end-of-epoch": True})

    before = checkpointer.list_checkpoints()
    torch.save(model.state_dict(), folder / "model.ckpt")
    after = checkpointer.list_checkpoints()

    assert before == []
    assert [checkpoint.path for checkpoint in after] == [folder]
