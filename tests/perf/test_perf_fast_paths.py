"""Functional tests of the fast save and load paths (no timing)."""

from __future__ import annotations

import io
import os

import pytest
import torch

from recoverkit import Checkpointer
from recoverkit.storage import torch_io
from recoverkit.storage.manifest import build_manifest, file_checksum
from recoverkit.storage.torch_io import (
    load_module_state_dict,
    load_weights_only,
    loading_options,
    save_torch_file,
)


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "weight": torch.randn(256, 512),
        "half": torch.randn(300).half(),
        "steps": torch.tensor(7, dtype=torch.int64),
    }


def test_saved_file_loads_with_plain_torch_load(tmp_path):
    state = _state()
    path = tmp_path / "state.ckpt"

    save_torch_file(state, path)

    loaded = torch.load(path, weights_only=True)
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_saved_file_loads_with_mmap(tmp_path):
    state = _state()
    path = tmp_path / "state.ckpt"
    save_torch_file(state, path)

    loaded = torch.load(path, weights_only=True, mmap=True)

    assert torch.equal(loaded["weight"], state["weight"])


def test_crc32_option_restored_after_save(tmp_path):
    assert torch.serialization.get_crc32_options() is True
    save_torch_file(_state(), tmp_path / "state.ckpt")
    assert torch.serialization.get_crc32_options() is True


def test_crc32_option_restored_after_failed_save(tmp_path):
    with pytest.raises(Exception):
        save_torch_file({"bad": lambda: None}, tmp_path / "state.ckpt")
    assert torch.serialization.get_crc32_options() is True


def test_manifest_reuses_checksum_from_write(tmp_path, monkeypatch):
    save_torch_file(_state(), tmp_path / "model.ckpt")
    expected = file_checksum(tmp_path / "model.ckpt")
    reads = []
    monkeypatch.setattr(
        "recoverkit.storage.manifest.file_checksum", lambda path: reads.append(path) or "read"
    )

    manifest = build_manifest(tmp_path, ["model"])

    assert manifest["files"]["model.ckpt"]["xxh3_64"] == expected
    assert reads == []


def test_manifest_rehashes_file_changed_after_write(tmp_path):
    path = tmp_path / "model.ckpt"
    save_torch_file(_state(), path)
    with open(path, "ab") as handle:
        handle.write(b"appended later")

    manifest = build_manifest(tmp_path, ["model"])

    assert manifest["files"]["model.ckpt"]["xxh3_64"] == file_checksum(path)
    assert manifest["files"]["model.ckpt"]["size"] == path.stat().st_size


class _ShortWriteFile(io.RawIOBase):
    """An unbuffered file that accepts at most 1000 bytes per write call."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        chunk = bytes(memoryview(data).cast("B")[:1000])
        self.data += chunk
        return len(chunk)


def test_hashing_writer_finishes_short_writes():
    target = _ShortWriteFile()
    writer = torch_io._HashingWriter(target)
    payload = bytes(range(256)) * 1024

    writer.write(payload)
    writer.write(b"tail")
    writer.flush()

    assert bytes(target.data) == payload + b"tail"
    assert writer.size == len(payload) + 4


def test_load_weights_only_follows_loading_options(tmp_path, monkeypatch):
    path = tmp_path / "state.ckpt"
    save_torch_file(_state(), path)
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs["mmap"]) or real_load(*args, **kwargs))

    load_weights_only(path)
    with loading_options(mmap=True):
        load_weights_only(path)
        load_weights_only(path, mmap=False)

    assert calls == [False, True, False]


def test_mmap_load_keeps_parameter_objects(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.BatchNorm1d(32), torch.nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    path = tmp_path / "model.ckpt"
    save_torch_file(model.state_dict(), path)
    saved = {key: value.clone() for key, value in model.state_dict().items()}
    parameters_before = list(model.parameters())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()

    with loading_options(mmap=True):
        mapped = load_weights_only(path)
        load_module_state_dict(model, mapped)

    assert model[0].weight.data_ptr() == mapped["0.weight"].data_ptr()
    assert all(a is b for a, b in zip(model.parameters(), parameters_before))
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    model(torch.randn(8, 16)).sum().backward()
    optimizer.step()
    assert not torch.equal(model[0].weight, saved["0.weight"])


def test_mmap_load_never_writes_the_file(tmp_path):
    model = torch.nn.Linear(16, 4)
    path = tmp_path / "model.ckpt"
    save_torch_file(model.state_dict(), path)
    checksum = file_checksum(path)

    with loading_options(mmap=True):
        load_module_state_dict(model, load_weights_only(path))
    with torch.no_grad():
        model.weight.add_(1.0)
    del model

    assert file_checksum(path) == checksum


def test_mmap_load_rejects_wrong_shape(tmp_path):
    path = tmp_path / "model.ckpt"
    save_torch_file(torch.nn.Linear(16, 4).state_dict(), path)

    with loading_options(mmap=True), pytest.raises(RuntimeError, match="size mismatch"):
        load_module_state_dict(torch.nn.Linear(16, 5), load_weights_only(path))


def test_mmap_load_rejects_missing_key(tmp_path):
    path = tmp_path / "model.ckpt"
    state = torch.nn.Linear(16, 4).state_dict()
    del state["bias"]
    save_torch_file(state, path)

    with loading_options(mmap=True), pytest.raises(RuntimeError, match="Missing key"):
        load_module_state_dict(torch.nn.Linear(16, 4), load_weights_only(path))


def test_checkpointer_mmap_recovers_model_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(32, 8)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 32)).sum().backward()
    optimizer.step()
    Checkpointer(tmp_path, {"model": model, "optimizer": optimizer}).save_checkpoint()
    expected_model = {key: value.clone() for key, value in model.state_dict().items()}
    expected_exp_avg = optimizer.state_dict()["state"][0]["exp_avg"].clone()

    fresh_model = torch.nn.Linear(32, 8)
    fresh_optimizer = torch.optim.Adam(fresh_model.parameters())
    recovering = Checkpointer(tmp_path, {"model": fresh_model, "optimizer": fresh_optimizer}, mmap=True)
    recovering.recover_if_possible()

    for key, value in fresh_model.state_dict().items():
        assert torch.equal(value, expected_model[key]), key
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"], expected_exp_avg)
    assert os.path.samefile(recovering.find_checkpoint().path, next(tmp_path.glob("CKPT+*")))


def test_deferred_fsync_left_to_manifest(tmp_path, monkeypatch):
    flushed = []
    monkeypatch.setattr("recoverkit.storage.manifest.fsync_file", flushed.append)
    save_torch_file(_state(), tmp_path / "now.ckpt")
    with torch_io.deferred_fsync():
        save_torch_file(_state(), tmp_path / "later.ckpt")

    build_manifest(tmp_path, ["now", "later"])

    assert [path.name for path in flushed] == ["later.ckpt"]


def test_module_recovery_reads_legacy_format(tmp_path):
    from recoverkit.hooks.torch_hooks import torch_recovery

    source = torch.nn.Linear(8, 2)
    path = tmp_path / "legacy.ckpt"
    torch.save(source.state_dict(), path, _use_new_zipfile_serialization=False)
    target = torch.nn.Linear(8, 2)

    torch_recovery(target, path, True)

    assert torch.equal(target.weight, source.weight)
