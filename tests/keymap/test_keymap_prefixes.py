"""The built-in ddp and compile keymaps and the checkpointer load hook."""

from __future__ import annotations

import pathlib

import pytest
import torch
from torch import nn

from recoverkit import Checkpointer
from recoverkit.errors import KeymapError
from recoverkit.state_dict.keymap import BUILTIN_KEYMAPS, Keymap, keymap_load_hook, resolve_keymap

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)


class HasModuleChild(nn.Module):
    """A model that really has a child named ``module`` among others."""

    def __init__(self) -> None:
        super().__init__()
        self.module = nn.Linear(3, 3)
        self.head = nn.Linear(3, 1)


class OnlyModuleChild(nn.Module):
    """A wrapper whose only child is named ``module``: every key starts with ``module.``."""

    def __init__(self) -> None:
        super().__init__()
        self.module = Net()


class CompiledLike(nn.Module):
    """Holds a model under ``_orig_mod``, as the module that torch.compile returns does."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._orig_mod = model


def ddp_keys(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"module.{key}": value for key, value in model.state_dict().items()}


def test_ddp_checkpoint_into_plain_model():
    source = Net()
    target = Net()
    mapped, report = Keymap.builtin("ddp").apply(ddp_keys(source), target)
    target.load_state_dict(mapped)
    assert torch.equal(target.head.weight, source.head.weight)
    assert {item.rules for item in report.mapped} == {("ddp-strip-module",)}


def test_ddp_without_target_strips_prefix():
    mapped, _report = Keymap.builtin("ddp").apply(ddp_keys(Net()))
    assert sorted(mapped) == ["encoder.bias", "encoder.weight", "head.bias", "head.weight"]


def test_plain_checkpoint_into_wrapped_model():
    source = Net()
    wrapped = nn.DataParallel(Net())
    mapped, _report = Keymap.builtin("ddp").apply(source.state_dict(), wrapped)
    assert sorted(mapped) == sorted(wrapped.state_dict())
    wrapped.load_state_dict(mapped)
    assert torch.equal(wrapped.module.encoder.weight, source.encoder.weight)


def test_ddp_never_adds_prefix_without_target():
    mapped, _report = Keymap.builtin("ddp").apply(Net().state_dict())
    assert sorted(mapped) == ["encoder.bias", "encoder.weight", "head.bias", "head.weight"]


@pytest.mark.parametrize("with_target", [True, False])
def test_ddp_leaves_real_module_child_alone(with_target):
    source = HasModuleChild()
    target = HasModuleChild()
    mapped, report = Keymap.builtin("ddp").apply(source.state_dict(), target if with_target else None)
    assert sorted(mapped) == ["head.bias", "head.weight", "module.bias", "module.weight"]
    assert report.renamed == []


def test_ddp_leaves_only_module_child_alone_given_target():
    source = OnlyModuleChild()
    target = OnlyModuleChild()
    mapped, report = Keymap.builtin("ddp").apply(source.state_dict(), target)
    assert sorted(mapped) == sorted(target.state_dict())
    assert report.renamed == []


def test_ddp_of_model_with_module_child():
    source = HasModuleChild()
    mapped, _report = Keymap.builtin("ddp").apply(ddp_keys(source), HasModuleChild())
    assert sorted(mapped) == ["head.bias", "head.weight", "module.bias", "module.weight"]


def test_ddp_into_ddp_changes_nothing():
    wrapped = nn.DataParallel(Net())
    _mapped, report = Keymap.builtin("ddp").apply(wrapped.state_dict(), nn.DataParallel(Net()))
    assert report.renamed == []


@pytest.mark.slow
def test_compile_keys_match_torch_compile():
    # Importing torch.compile's machinery takes seconds, so the other tests use CompiledLike.
    assert list(torch.compile(Net()).state_dict()) == list(CompiledLike(Net()).state_dict())


def test_compiled_checkpoint_into_plain_model():
    source = CompiledLike(Net())
    assert list(source.state_dict())[0] == "_orig_mod.encoder.weight"
    mapped, _report = Keymap.builtin("compile").apply(source.state_dict(), Net())
    assert sorted(mapped) == ["encoder.bias", "encoder.weight", "head.bias", "head.weight"]


def test_plain_checkpoint_into_compiled_model():
    target = CompiledLike(Net())
    mapped, _report = Keymap.builtin("compile").apply(Net().state_dict(), target)
    assert sorted(mapped) == sorted(target.state_dict())


def test_ddp_of_compiled_model_into_plain_model():
    source = {f"module._orig_mod.{key}": value for key, value in Net().state_dict().items()}
    for target in (Net(), None):
        mapped, _report = resolve_keymap(["ddp", "compile"]).apply(source, target)
        assert sorted(mapped) == ["encoder.bias", "encoder.weight", "head.bias", "head.weight"]


@pytest.mark.parametrize("name", BUILTIN_KEYMAPS)
def test_conf_group_file_matches_builtin(name):
    conf_file = REPO_ROOT / "conf" / "keymap" / f"{name}.yaml"
    conf_keymap = Keymap.from_file(conf_file)
    assert conf_keymap.name == name
    assert conf_keymap.to_spec()["rules"] == Keymap.builtin(name).to_spec()["rules"]


def test_unknown_builtin_is_an_error():
    with pytest.raises(KeymapError, match="Unknown built-in keymap 'fsdp'"):
        Keymap.builtin("fsdp")


def test_checkpointer_loads_ddp_checkpoint_through_hook(tmp_path):
    wrapped = nn.DataParallel(Net())
    Checkpointer(tmp_path, {"model": wrapped}).save_checkpoint()
    plain = Net()
    checkpointer = Checkpointer(tmp_path, {"model": plain}, custom_load_hooks={"model": keymap_load_hook("ddp")})
    assert checkpointer.recover_if_possible() is not None
    assert torch.equal(plain.head.weight, wrapped.module.head.weight)


def test_load_hook_strict_rejects_missing_keys(tmp_path):
    torch.save({"module.encoder.weight": torch.zeros(4, 3)}, tmp_path / "partial.ckpt")
    model = Net()
    with pytest.raises(KeymapError, match="target key"):
        keymap_load_hook("ddp")(model, tmp_path / "partial.ckpt", True)
    keymap_load_hook("ddp", strict=False)(model, tmp_path / "partial.ckpt")
    assert torch.equal(model.encoder.weight, torch.zeros(4, 3))


def test_load_hook_resolves_keymap_early():
    with pytest.raises(KeymapError):
        keymap_load_hook("no-such-keymap.yaml")


def test_checkpointer_loads_plain_checkpoint_into_wrapped_model(tmp_path):
    plain = Net()
    Checkpointer(tmp_path, {"model": plain}).save_checkpoint()
    wrapped = nn.DataParallel(Net())
    checkpointer = Checkpointer(tmp_path, {"model": wrapped}, custom_load_hooks={"model": keymap_load_hook("ddp")})
    assert checkpointer.recover_if_possible() is not None
    assert torch.equal(wrapped.module.encoder.weight, plain.encoder.weight)
