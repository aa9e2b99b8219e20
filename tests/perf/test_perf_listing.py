"""Functional tests of checkpoint listing with its in-memory and on-disk caches."""

from __future__ import annotations

import shutil

import torch
import yaml

from recoverkit import Checkpointer
from recoverkit.storage import listing
from recoverkit.storage.listing import LISTING_CACHE_FILENAME, CheckpointLister
from recoverkit.storage.meta import dump_meta

_MANY = 210  # above the number of parsed meta files that writes the cache file


def _write_checkpoint(checkpoints_dir, index: int, loss: float, with_manifest: bool = True) -> None:
    folder = checkpoints_dir / f"CKPT+c{index:04d}"
    folder.mkdir(parents=True)
    (folder / "model.ckpt").write_bytes(b"weights")
    meta = {"unixtime": 1000.0 + index, "end-of-epoch": True, "loss": loss}
    if with_manifest:
        meta["recoverkit-files"] = {
            "format": 1,
            "recoverables": ["model"],
            "files": {"model.ckpt": {"size": 7, "xxh3_64": "0" * 16}},
        }
    (folder / "CKPT.yaml").write_text(dump_meta(meta))


def _many_checkpoints(checkpoints_dir) -> None:
    for index in range(_MANY):
        _write_checkpoint(checkpoints_dir, index, loss=float(index))


def _count_parses(monkeypatch) -> list[str]:
    parsed = []
    real_parse = listing.parse_meta

    def counting_parse(text):
        parsed.append(text)
        return real_parse(text)

    monkeypatch.setattr(listing, "parse_meta", counting_parse)
    return parsed


def test_cache_file_written_for_many_checkpoints(tmp_path):
    _many_checkpoints(tmp_path)

    CheckpointLister(tmp_path).list()

    assert (tmp_path / LISTING_CACHE_FILENAME).is_file()


def test_no_cache_file_for_few_checkpoints(tmp_path):
    _write_checkpoint(tmp_path, 0, loss=1.0)

    CheckpointLister(tmp_path).list()

    assert not (tmp_path / LISTING_CACHE_FILENAME).exists()


def test_new_lister_parses_nothing_with_cache_file(tmp_path, monkeypatch):
    _many_checkpoints(tmp_path)
    expected = [(checkpoint.path, checkpoint.meta, checkpoint.paramfiles) for checkpoint, _ in CheckpointLister(tmp_path).list()]
    parsed = _count_parses(monkeypatch)

    listed = CheckpointLister(tmp_path).list()

    assert parsed == []
    assert [(checkpoint.path, checkpoint.meta, checkpoint.paramfiles) for checkpoint, _ in listed] == expected


def test_cache_file_entry_ignored_after_meta_rewrite(tmp_path, monkeypatch):
    _many_checkpoints(tmp_path)
    CheckpointLister(tmp_path).list()
    meta_path = tmp_path / "CKPT+c0005" / "CKPT.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["loss"] = -1.0
    meta_path.unlink()
    meta_path.write_text(dump_meta(meta) + "# rewritten\n")
    parsed = _count_parses(monkeypatch)

    listed = {checkpoint.path.name: checkpoint for checkpoint, _ in CheckpointLister(tmp_path).list()}

    assert len(parsed) == 1
    assert listed["CKPT+c0005"].meta["loss"] == -1.0


def test_corrupt_cache_file_ignored(tmp_path):
    _many_checkpoints(tmp_path)
    (tmp_path / LISTING_CACHE_FILENAME).write_text("{not json")

    listed = CheckpointLister(tmp_path).list()

    assert len(listed) == _MANY


def test_listing_sees_other_process_changes(tmp_path):
    _many_checkpoints(tmp_path)
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    assert len(checkpointer.list_checkpoints()) == _MANY

    shutil.rmtree(tmp_path / "CKPT+c0003")
    _write_checkpoint(tmp_path, 9999, loss=-5.0)
    listed = checkpointer.list_checkpoints()
    fresh = Checkpointer(tmp_path, {"model": torch.nn.Linear(2, 2)}).list_checkpoints()

    names = {checkpoint.path.name for checkpoint in listed}
    assert "CKPT+c0003" not in names
    assert "CKPT+c9999" in names
    assert {checkpoint.path.name for checkpoint in fresh} == names
    assert checkpointer.find_checkpoint(min_key="loss").path.name == "CKPT+c9999"


def test_legacy_folder_sees_new_parameter_file(tmp_path):
    _write_checkpoint(tmp_path, 0, loss=1.0, with_manifest=False)
    lister = CheckpointLister(tmp_path)
    assert list(lister.list()[0][0].paramfiles) == ["model"]

    (tmp_path / "CKPT+c0000" / "optimizer.ckpt").write_bytes(b"state")
    listed = lister.list()

    assert list(listed[0][0].paramfiles) == ["model", "optimizer"]
