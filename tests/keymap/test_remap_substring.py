"""SpeechBrain's substring remapping, and the project-wide rules that every loader applies."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from recoverkit import Checkpointer
from recoverkit.hooks import torch_parameter_transfer, torch_patched_state_dict_load, torch_recovery
from recoverkit.state_dict import DEFAULT_KEY_MAPPING, hook_on_loading_state_dict_checkpoint, map_old_state_dict_weights
from recoverkit.state_dict.keymap import keymap_load_hook
from recoverkit.state_dict.transfer import load_state_dict_file, transfer, transfer_parameters


def test_speechbrain_example():
    state_dict = {"model.encoder.layer.0.atn.self.query.weight": 1}
    mapped = map_old_state_dict_weights(state_dict, {".atn": ".attn"})
    assert mapped == {"model.encoder.layer.0.attn.self.query.weight": 1}


def test_partial_match_is_renamed_too():
    state_dict = {"enc.atn.w": 1, "enc.atn_proj.w": 2, "enc.xatn.w": 3}
    mapped = map_old_state_dict_weights(state_dict, {".atn": ".attn"})
    assert mapped == {"enc.xatn.w": 3, "enc.attn.w": 1, "enc.attn_proj.w": 2}


def test_every_occurrence_in_a_key_is_replaced():
    mapped = map_old_state_dict_weights({"a.atn.b.atn": 1}, {".atn": ".attn"})
    assert list(mapped) == ["a.attn.b.attn"]


def test_renamed_keys_move_to_the_end():
    mapped = map_old_state_dict_weights({"old.w": 1, "keep.w": 2}, {"old": "new"})
    assert list(mapped) == ["keep.w", "new.w"]


def test_mappings_apply_in_order_and_chain():
    mapped = map_old_state_dict_weights({"a.w": 1}, {"a.": "b.", "b.": "c."})
    assert mapped == {"c.w": 1}


def test_renamed_key_replaces_existing_key():
    mapped = map_old_state_dict_weights({"new.w": 1, "old.w": 2}, {"old": "new"})
    assert mapped == {"new.w": 2}


def test_input_is_not_modified():
    state_dict = {"old.w": 1}
    map_old_state_dict_weights(state_dict, {"old": "new"})
    assert state_dict == {"old.w": 1}


def test_hook_without_mapping_returns_input():
    state_dict = {"a": torch.zeros(1)}
    assert hook_on_loading_state_dict_checkpoint(state_dict) is state_dict


def test_hook_returns_non_mapping_unchanged(monkeypatch):
    monkeypatch.setitem(DEFAULT_KEY_MAPPING, ".atn", ".attn")
    value = [torch.zeros(1), torch.ones(1)]
    assert hook_on_loading_state_dict_checkpoint(value) is value


# Every loader applies DEFAULT_KEY_MAPPING


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Linear(2, 2)


def old_named_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key.replace("attn", "atn"): value.clone() for key, value in model.state_dict().items()}


@pytest.fixture
def default_rename(monkeypatch):
    monkeypatch.setitem(DEFAULT_KEY_MAPPING, "atn.", "attn.")


@pytest.fixture
def old_file(tmp_path):
    source = Attention()
    torch.nn.init.constant_(source.attn.weight, 3.0)
    path = tmp_path / "old.ckpt"
    torch.save(old_named_state(source), path)
    return path


def test_patched_load_applies_defaults(default_rename, old_file):
    assert sorted(torch_patched_state_dict_load(old_file)) == ["attn.bias", "attn.weight"]


@pytest.mark.parametrize(
    "load",
    [
        lambda model, path: torch_recovery(model, path, True),
        lambda model, path: torch_parameter_transfer(model, path),
        lambda model, path: transfer_parameters(model, path, strict=True),
        lambda model, path: transfer({"model": model}, path, strict=True),
        lambda model, path: keymap_load_hook("ddp")(model, path, True),
    ],
    ids=["torch_recovery", "torch_parameter_transfer", "transfer_parameters", "transfer", "keymap_load_hook"],
)
def test_loader_applies_defaults(default_rename, old_file, load):
    model = Attention()
    load(model, old_file)
    assert torch.equal(model.attn.weight, torch.full((2, 2), 3.0))


def test_safetensors_load_applies_defaults(default_rename, tmp_path):
    path = tmp_path / "old.safetensors"
    save_file(old_named_state(Attention()), str(path))
    assert sorted(load_state_dict_file(path)) == ["attn.bias", "attn.weight"]


def test_checkpointer_recovery_applies_defaults(monkeypatch, tmp_path):
    source = Attention()
    torch.nn.init.constant_(source.attn.weight, 5.0)
    Checkpointer(tmp_path, {"model": source}).save_checkpoint()
    monkeypatch.setitem(DEFAULT_KEY_MAPPING, "attn.", "renamed.")

    class Renamed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.renamed = nn.Linear(2, 2)

    target = Renamed()
    Checkpointer(tmp_path, {"model": target}).recover_if_possible()
    assert torch.equal(target.renamed.weight, torch.full((2, 2), 5.0))
