"""Keymaps and transfers declared in YAML reach the load path."""

from __future__ import annotations

import pathlib

import pytest
import safetensors.torch
import torch

from recoverkit import Checkpointer, RNGState
from recoverkit.config import apply_transfers, load_checkpointer
from recoverkit.errors import KeymapError, MissingRecoverableError


class Wrapper(torch.nn.Module):
    """Stands in for DistributedDataParallel: its keys start with ``module.``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module


def _linear(value: float) -> torch.nn.Linear:
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer


def _save_wrapped_checkpoint(folder: pathlib.Path, value: float) -> None:
    Checkpointer(folder, {"model": Wrapper(_linear(value))}).save_checkpoint(meta={"epoch": 1})


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text, encoding="utf-8")
    return path


def _recipe(tmp_path: pathlib.Path, section_extra: str = "") -> pathlib.Path:
    return _recipe_in(tmp_path, tmp_path, section_extra)


def _recipe_in(config_dir: pathlib.Path, tmp_path: pathlib.Path, section_extra: str) -> pathlib.Path:
    """Write a recipe into ``config_dir`` whose checkpoints go to ``tmp_path / 'ckpts'``."""
    return _write(
        config_dir / "train.yaml",
        "model: {_target_: torch.nn.Linear, in_features: 3, out_features: 2}\n"
        "checkpointer:\n"
        f"  checkpoints_dir: {tmp_path / 'ckpts'}\n"
        "  recoverables: {model: '${model}'}\n" + section_extra,
    )


def test_builtin_keymap_reaches_recovery(tmp_path: pathlib.Path) -> None:
    _save_wrapped_checkpoint(tmp_path / "ckpts", 0.5)
    loaded = load_checkpointer(_recipe(tmp_path, "  keymaps: {model: ddp}\n"))

    checkpoint = loaded.checkpointer.recover_if_possible()

    assert checkpoint is not None
    assert torch.equal(loaded.objects["model"].weight, torch.full((2, 3), 0.5))


def test_recovery_without_keymap_fails(tmp_path: pathlib.Path) -> None:
    _save_wrapped_checkpoint(tmp_path / "ckpts", 0.5)
    loaded = load_checkpointer(_recipe(tmp_path))

    with pytest.raises(RuntimeError, match="module.weight"):
        loaded.checkpointer.recover_if_possible()


def test_keymap_group_selected_by_override(tmp_path: pathlib.Path) -> None:
    # The default checkpointer group adds the rng recoverable.
    Checkpointer(tmp_path / "ckpts", {"model": Wrapper(_linear(1.5)), "rng": RNGState()}).save_checkpoint()
    recipe = _write(
        tmp_path / "grouped.yaml",
        "defaults:\n  - /checkpointer: default\n  - /retention: latest\n  - /schedule: every_epoch\n"
        "  - /keymap: null\n  - _self_\n"
        "model: {_target_: torch.nn.Linear, in_features: 3, out_features: 2}\n"
        "checkpointer:\n"
        f"  checkpoints_dir: {tmp_path / 'ckpts'}\n"
        "  recoverables: {model: '${model}'}\n",
    )

    loaded = load_checkpointer(recipe, ["keymap=ddp", "+checkpointer.keymaps.model=${keymap}"])
    loaded.checkpointer.recover_if_possible()

    assert torch.equal(loaded.objects["model"].bias, torch.full((2,), 1.5))


def test_inline_rules_reach_recovery(tmp_path: pathlib.Path) -> None:
    old = torch.nn.Sequential(_linear(2.0))
    Checkpointer(tmp_path / "ckpts", {"model": old}).save_checkpoint()
    rules = (
        "  keymaps:\n"
        "    model:\n"
        "      - {rename: {from: 0.weight, to: weight}}\n"
        "      - {rename: {from: 0.bias, to: bias}}\n"
    )
    loaded = load_checkpointer(_recipe(tmp_path, rules))

    loaded.checkpointer.recover_if_possible()

    assert torch.equal(loaded.objects["model"].weight, torch.full((2, 3), 2.0))


def test_keymap_file_next_to_config(tmp_path: pathlib.Path) -> None:
    config_dir = tmp_path / "recipe"
    config_dir.mkdir()
    _write(config_dir / "old_names.yaml", "rules:\n  - {prefix: {from: 'module.', to: ''}}\n")
    _save_wrapped_checkpoint(tmp_path / "ckpts", 3.0)
    loaded = load_checkpointer(_recipe_in(config_dir, tmp_path, "  keymaps: {model: old_names.yaml}\n"))

    loaded.checkpointer.recover_if_possible()

    assert torch.equal(loaded.objects["model"].weight, torch.full((2, 3), 3.0))



def test_hyperpyyaml_keymap_reaches_recovery(tmp_path: pathlib.Path) -> None:
    _save_wrapped_checkpoint(tmp_path / "ckpts", -0.5)
    path = _write(
        tmp_path / "hparams.yaml",
        "model: !new:torch.nn.Linear {in_features: 3, out_features: 2}\n"
        "checkpointer:\n"
        f"    checkpoints_dir: {tmp_path / 'ckpts'}\n"
        "    recoverables: {model: !ref <model>}\n"
        "    keymaps: {model: [ddp]}\n",
    )
    loaded = load_checkpointer(path)

    loaded.checkpointer.recover_if_possible()

    assert torch.equal(loaded.objects["model"].weight, torch.full((2, 3), -0.5))


def test_transfer_from_other_run(tmp_path: pathlib.Path) -> None:
    _save_wrapped_checkpoint(tmp_path / "pretrained", 4.0)
    transfer = (
        "  transfer:\n"
        f"    - {{source: {tmp_path / 'pretrained'}, recoverables: [model], keymap: ddp}}\n"
    )
    loaded = load_checkpointer(_recipe(tmp_path, transfer), transfer=True)

    assert torch.equal(loaded.objects["model"].weight, torch.full((2, 3), 4.0))
    assert loaded.checkpointer.list_checkpoints() == []


def test_transfer_from_weights_files(tmp_path: pathlib.Path) -> None:
    torch.save({"weight": torch.full((2, 3), 5.0), "bias": torch.full((2,), 5.0)}, tmp_path / "w.pt")
    safetensors.torch.save_file({"bias": torch.full((2,), 6.0)}, str(tmp_path / "bias.safetensors"))
    transfer = (
        "  transfer:\n"
        f"    - {{source: {tmp_path / 'w.pt'}, recoverables: [model]}}\n"
        f"    - {{source: {tmp_path / 'bias.safetensors'}, recoverables: [model], strict: false}}\n"
    )
    loaded = load_checkpointer(_recipe(tmp_path, transfer))

    apply_transfers(loaded)

    assert torch.equal(loaded.objects["model"].weight, torch.full((2, 3), 5.0))
    assert torch.equal(loaded.objects["model"].bias, torch.full((2,), 6.0))


def test_strict_transfer_rejects_missing_keys(tmp_path: pathlib.Path) -> None:
    safetensors.torch.save_file({"bias": torch.full((2,), 6.0)}, str(tmp_path / "bias.safetensors"))
    transfer = f"  transfer:\n    - {{source: {tmp_path / 'bias.safetensors'}, recoverables: [model]}}\n"
    loaded = load_checkpointer(_recipe(tmp_path, transfer))

    with pytest.raises(KeymapError, match="weight"):
        loaded.apply_transfers()


def test_transfer_of_recoverable_missing_in_source(tmp_path: pathlib.Path) -> None:
    Checkpointer(tmp_path / "pretrained", {"encoder": _linear(1.0)}).save_checkpoint()
    transfer = f"  transfer:\n    - {{source: {tmp_path / 'pretrained'}, recoverables: [model]}}\n"
    loaded = load_checkpointer(_recipe(tmp_path, transfer))

    with pytest.raises(MissingRecoverableError, match="encoder"):
        loaded.apply_transfers()


def _save_wrapped_with_extra_key(folder: pathlib.Path) -> None:
    inner = _linear(2.5)
    inner.register_buffer("extra", torch.zeros(1))
    Checkpointer(folder, {"model": Wrapper(inner)}).save_checkpoint()


def test_keymap_strict_by_default(tmp_path: pathlib.Path) -> None:
    _save_wrapped_with_extra_key(tmp_path / "ckpts")
    loaded = load_checkpointer(_recipe(tmp_path, "  keymaps: {model: ddp}\n"))

    with pytest.raises(RuntimeError, match="extra"):
        loaded.checkpointer.recover_if_possible()


def test_non_strict_keymap_loads_with_unused_key(tmp_path: pathlib.Path) -> None:
    _save_wrapped_with_extra_key(tmp_path / "ckpts")
    loaded = load_checkpointer(_recipe(tmp_path, "  keymaps: {model: {keymap: ddp, strict: false}}\n"))

    loaded.checkpointer.recover_if_possible()

    assert torch.equal(loaded.objects["model"].weight, torch.full((2, 3), 2.5))
