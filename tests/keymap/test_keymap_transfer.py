"""Transfer of weights from files and checkpoint folders into objects."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from recoverkit import Checkpointer, mark_as_loader, mark_as_transfer, register_checkpoint_hooks
from recoverkit.errors import KeymapError, MissingHookError, MissingRecoverableError
from recoverkit.state_dict.transfer import (
    find_transfer_files,
    load_state_dict_file,
    read_state_dict_shapes,
    transfer,
    transfer_parameters,
)


class Net(nn.Module):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)
        for parameter in self.parameters():
            nn.init.constant_(parameter, value)


def bert_style(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"bert.{key}": value.clone() for key, value in model.state_dict().items()}


STRIP_BERT = [{"prefix": {"from": "bert.", "to": ""}}]


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".safetensors"])
def test_transfer_from_each_file_format(tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(bert_style(Net(2.0)), str(path))
    else:
        torch.save(bert_style(Net(2.0)), path)
    model = Net()
    report = transfer_parameters(model, path, keymap=STRIP_BERT, strict=True)
    assert torch.equal(model.head.weight, torch.full((2, 4), 2.0))
    assert len(report.renamed) == 4


def test_lightning_style_checkpoint_uses_state_dict_entry(tmp_path):
    path = tmp_path / "epoch=3.ckpt"
    torch.save({"epoch": 3, "global_step": 30, "state_dict": {f"model.{k}": v for k, v in Net(1.0).state_dict().items()}}, path)
    model = Net()
    transfer_parameters(model, path, keymap=[{"prefix": {"from": "model.", "to": ""}}], strict=True)
    assert torch.equal(model.encoder.bias, torch.ones(4))


def test_read_shapes_matches_loaded_state(tmp_path):
    save_file(Net(1.0).state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(Net(1.0).state_dict(), tmp_path / "w.ckpt")
    for name in ("w.safetensors", "w.ckpt"):
        shapes = read_state_dict_shapes(tmp_path / name)
        loaded = load_state_dict_file(tmp_path / name)
        assert {k: (tuple(v.shape), v.dtype) for k, v in shapes.items()} == {
            k: (tuple(v.shape), v.dtype) for k, v in loaded.items()
        }
        assert all(value.device.type == "meta" for value in shapes.values())


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_state_dict_file(tmp_path / "nothing.pt")


def test_transfer_default_is_non_strict(tmp_path, caplog):
    state = Net(1.0).state_dict()
    del state["head.bias"]
    torch.save(state, tmp_path / "partial.ckpt")
    model = Net()
    with caplog.at_level(logging.WARNING):
        report = transfer_parameters(model, tmp_path / "partial.ckpt")
    assert report.missing == ["head.bias"]
    assert "head.bias" in caplog.text
    assert torch.equal(model.head.weight, torch.ones(2, 4))
    with pytest.raises(KeymapError, match="head.bias"):
        transfer_parameters(Net(), tmp_path / "partial.ckpt", strict=True)


def test_shape_mismatch_leaves_model_unchanged(tmp_path):
    state = Net(1.0).state_dict()
    state["head.weight"] = torch.ones(3, 4)
    torch.save(state, tmp_path / "wrong.ckpt")
    model = Net()
    with pytest.raises(KeymapError, match=r"'head.weight'.*\(3, 4\).*\(2, 4\)"):
        transfer_parameters(model, tmp_path / "wrong.ckpt")
    assert torch.equal(model.encoder.weight, torch.zeros(4, 3))


def test_transfer_from_checkpoint_folder_and_dir(tmp_path):
    checkpointer = Checkpointer(tmp_path / "run", {"model": Net(1.0)})
    first = checkpointer.save_checkpoint(name="first")
    checkpointer.recoverables["model"] = Net(2.0)
    checkpointer.save_checkpoint(name="second")

    from_folder = Net()
    transfer({"encoder_net": from_folder}, first.path, names={"encoder_net": "model"})
    assert torch.equal(from_folder.head.bias, torch.ones(2))

    newest = Net()
    reports = transfer({"model": newest}, tmp_path / "run")
    assert torch.equal(newest.head.bias, torch.full((2,), 2.0))
    assert reports["model"].missing == []


def test_transfer_names_missing_recoverable(tmp_path):
    checkpoint = Checkpointer(tmp_path, {"model": Net()}).save_checkpoint()
    with pytest.raises(MissingRecoverableError, match=r"no file for 'encoder'.*\['model'\]"):
        find_transfer_files(checkpoint.path, {"encoder": "encoder"})


def test_transfer_from_file_into_two_recoverables_is_rejected(tmp_path):
    torch.save(Net().state_dict(), tmp_path / "w.ckpt")
    with pytest.raises(KeymapError, match="single file"):
        transfer({"a": Net(), "b": Net()}, tmp_path / "w.ckpt")


def test_transfer_unknown_recoverable(tmp_path):
    torch.save(Net().state_dict(), tmp_path / "w.ckpt")
    with pytest.raises(KeyError, match="encoder"):
        transfer({"model": Net()}, tmp_path / "w.ckpt", names=["encoder"])


def test_transfer_source_without_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a weights file"):
        transfer({"model": Net()}, tmp_path)


# Hook preference


@register_checkpoint_hooks
class WithBothHooks:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @mark_as_loader
    def load(self, path, end_of_epoch):
        self.calls.append(("load", str(end_of_epoch)))

    @mark_as_transfer
    def transfer(self, path):
        self.calls.append(("transfer", torch.load(path, weights_only=True)["value"].item()))


@register_checkpoint_hooks
class WithLoaderOnly:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    @mark_as_loader
    def load(self, path, end_of_epoch):
        self.calls.append(("load", end_of_epoch))


def test_transfer_hook_is_preferred_to_load_hook(tmp_path):
    torch.save({"value": torch.tensor(7)}, tmp_path / "v.ckpt")
    obj = WithBothHooks()
    assert transfer_parameters(obj, tmp_path / "v.ckpt") is None
    assert obj.calls == [("transfer", 7)]


def test_load_hook_is_used_without_transfer_hook(tmp_path):
    torch.save({"value": torch.tensor(7)}, tmp_path / "v.ckpt")
    obj = WithLoaderOnly()
    transfer_parameters(obj, tmp_path / "v.ckpt")
    assert obj.calls == [("load", False)]


def test_custom_hook_gets_mapped_file(tmp_path):
    torch.save({"old_value": torch.tensor(9)}, tmp_path / "v.ckpt")
    obj = WithBothHooks()
    report = transfer_parameters(obj, tmp_path / "v.ckpt", keymap=[{"rename": {"from": "old_value", "to": "value"}}])
    assert obj.calls == [("transfer", 9)]
    assert report.renamed[0].target == "value"


def test_custom_hook_argument_wins(tmp_path):
    torch.save(Net(1.0).state_dict(), tmp_path / "w.ckpt")
    seen = []
    transfer({"model": Net()}, tmp_path / "w.ckpt", custom_hooks={"model": lambda obj, path: seen.append(path.name)})
    assert seen == ["w.ckpt"]


def test_object_without_hooks_is_rejected(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "w.ckpt")
    with pytest.raises(MissingHookError, match="object"):
        transfer_parameters(object(), tmp_path / "w.ckpt")


def test_read_shapes_of_legacy_torch_file(tmp_path):
    torch.save({"a": torch.zeros(2, 3)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    shapes = read_state_dict_shapes(tmp_path / "legacy.pt")
    assert tuple(shapes["a"].shape) == (2, 3)
    assert shapes["a"].device.type == "meta"
