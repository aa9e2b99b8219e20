"""Case 7: ``module.`` prefixes of DDP go both ways through the built-in ``ddp`` keymap.

``torch.nn.DataParallel`` replaces DistributedDataParallel here: both wrap the
model as a child named ``module``, so their state dict keys are the same, and
DataParallel needs no process group.
"""

from __future__ import annotations

import pytest
import torch

from recoverkit import Checkpointer
from recoverkit.state_dict.keymap import keymap_load_hook


class NetWithModuleChild(torch.nn.Module):
    """A plain model whose first child is really called ``module``."""

    def __init__(self) -> None:
        super().__init__()
        self.module = torch.nn.Linear(3, 3)
        self.head = torch.nn.Linear(3, 1)


class OnlyModuleChild(torch.nn.Module):
    """A plain model whose only child is called ``module``, so every key starts with ``module.``."""

    def __init__(self) -> None:
        super().__init__()
        self.module = torch.nn.Linear(3, 3)


def plain_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))


def wrapped_model() -> torch.nn.Module:
    return torch.nn.DataParallel(plain_model())


def save_then_load(tmp_path, source: torch.nn.Module, target: torch.nn.Module, keymap: str | None) -> None:
    Checkpointer(tmp_path, {"model": source}).save_checkpoint()
    checkpointer = Checkpointer(tmp_path)
    hook = keymap_load_hook(keymap) if keymap is not None else None
    checkpointer.add_recoverable("model", target, custom_load_hook=hook)
    checkpointer.recover_if_possible()


def values(model: torch.nn.Module) -> list[torch.Tensor]:
    return list(model.state_dict().values())


@pytest.mark.parametrize(
    ("make_source", "make_target"),
    [(wrapped_model, plain_model), (plain_model, wrapped_model)],
    ids=["ddp-to-plain", "plain-to-ddp"],
)
def test_ddp_prefix_mapped_both_ways(tmp_path, make_source, make_target):
    torch.manual_seed(0)
    source = make_source()
    torch.manual_seed(1)
    target = make_target()

    save_then_load(tmp_path, source, target, keymap="ddp")

    assert len(values(target)) == 4
    for loaded, saved in zip(values(target), values(source)):
        assert torch.equal(loaded, saved)


@pytest.mark.parametrize("model_class", [NetWithModuleChild, OnlyModuleChild])
@pytest.mark.parametrize("keymap", ["ddp", None], ids=["ddp-keymap", "default-hook"])
def test_real_module_child_not_mangled(tmp_path, model_class, keymap):
    torch.manual_seed(0)
    source = model_class()
    torch.manual_seed(1)
    target = model_class()

    save_then_load(tmp_path, source, target, keymap=keymap)

    assert list(target.state_dict()) == list(source.state_dict())
    for loaded, saved in zip(values(target), values(source)):
        assert torch.equal(loaded, saved)


def test_ddp_keys_need_the_keymap(tmp_path):
    Checkpointer(tmp_path, {"model": wrapped_model()}).save_checkpoint()
    checkpointer = Checkpointer(tmp_path, {"model": plain_model()}, strict_recovery=True)

    with pytest.raises(RuntimeError, match="module.0.weight"):
        checkpointer.recover_if_possible()
