"""The dry-run report of a keymap and the errors and warnings it turns into."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn

from recoverkit.errors import KeymapError
from recoverkit.state_dict.keymap import Keymap


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.second = nn.Linear(4, 2)


def renamed_checkpoint() -> dict[str, torch.Tensor]:
    """A TwoLayers state dict saved under older module names."""
    model = TwoLayers()
    return {key.replace("first", "fc1").replace("second", "fc2"): value for key, value in model.state_dict().items()}


RENAMES = [
    {"name": "fc1", "prefix": {"from": "fc1.", "to": "first."}},
    {"name": "fc2", "prefix": {"from": "fc2.", "to": "second."}},
]


def test_plan_reports_each_key_and_rule():
    report = Keymap.from_rules(RENAMES, name="renames").plan(renamed_checkpoint(), TwoLayers())
    moves = {item.target: (item.sources, item.rules) for item in report.mapped}
    assert moves["first.weight"] == (("fc1.weight",), ("fc1",))
    assert moves["second.bias"] == (("fc2.bias",), ("fc2",))
    assert report.unused == []
    assert report.missing == []
    assert report.errors() == []
    assert report.rule_matches == {"fc1": 2, "fc2": 2}


def test_plan_copies_no_tensor_data():
    source = renamed_checkpoint()
    before = {key: value.clone() for key, value in source.items()}
    report = Keymap.from_rules([{"transpose": {"from": "fc1.weight"}}]).plan(source)
    assert report.mapped[0].shape == (3, 4)
    for key, value in source.items():
        assert torch.equal(value, before[key]), key


def test_unused_and_missing_keys_fail_strict_load():
    source = renamed_checkpoint()
    source["fc3.weight"] = torch.zeros(1)
    keymap = Keymap.from_rules(RENAMES[:1], name="partial")
    with pytest.raises(KeymapError) as raised:
        keymap.apply(source, TwoLayers(), strict=True, origin="old.ckpt")
    message = str(raised.value)
    assert "keymap 'partial' to old.ckpt" in message
    assert "3 source key(s) unused" in message
    assert "fc2.weight" in message
    assert "fc3.weight" in message
    assert "2 target key(s) missing" in message
    assert "second.bias" in message
    assert "load non-strictly" in message


def test_unused_and_missing_keys_warn_non_strict(caplog):
    source = renamed_checkpoint()
    keymap = Keymap.from_rules(RENAMES[:1], name="partial")
    with caplog.at_level(logging.WARNING, logger="recoverkit.state_dict.keymap.report"):
        mapped, report = keymap.apply(source, TwoLayers(), strict=False)
    assert sorted(mapped) == ["fc2.bias", "fc2.weight", "first.bias", "first.weight"]
    assert [item.target for item in report.unused] == ["fc2.weight", "fc2.bias"]
    assert report.missing == ["second.weight", "second.bias"]
    warnings = " ".join(record.getMessage() for record in caplog.records)
    assert "2 source key(s) unused" in warnings
    assert "fc2.weight" in warnings
    assert "second.weight" in warnings


def test_shape_mismatch_fails_even_non_strict():
    source = renamed_checkpoint()
    source["fc2.weight"] = torch.zeros(5, 4)
    keymap = Keymap.from_rules(RENAMES, name="renames")
    with pytest.raises(KeymapError) as raised:
        keymap.apply(source, TwoLayers(), strict=False)
    message = str(raised.value)
    assert "'second.weight' from fc2.weight: shape (5, 4), target expects (2, 4)" in message


def test_dtype_mismatch_is_only_a_warning(caplog):
    source = renamed_checkpoint()
    source["fc1.bias"] = source["fc1.bias"].double()
    with caplog.at_level(logging.WARNING, logger="recoverkit.state_dict.keymap.report"):
        _mapped, report = Keymap.from_rules(RENAMES).apply(source, TwoLayers())
    assert [(item.target, item.dtype, item.expected) for item in report.dtype_mismatches] == [
        ("first.bias", "float64", "float32")
    ]
    assert "cast on load" in caplog.text


def test_collision_names_keys_and_shapes():
    source = {"enc.w": torch.zeros(2, 2), "encoder.w": torch.zeros(3)}
    keymap = Keymap.from_rules([{"name": "short", "prefix": {"from": "encoder.", "to": "enc."}}])
    with pytest.raises(KeymapError) as raised:
        keymap.plan(source)
    message = str(raised.value)
    assert "rule 'short' maps two values onto target key 'enc.w'" in message
    assert "'enc.w' (shape (2, 2) float32)" in message
    assert "from source encoder.w (shape (3,) float32)" in message


def test_two_renamed_keys_on_one_target():
    source = {"a.0.w": torch.zeros(1), "b.0.w": torch.zeros(1)}
    keymap = Keymap.from_rules([{"regex": {"pattern": r"^[ab]\.(\d+)\.w$", "to": r"c.\1.w"}}])
    with pytest.raises(KeymapError, match=r"onto target key 'c\.0\.w'.*a\.0\.w.*b\.0\.w"):
        keymap.plan(source)


def test_report_without_target_checks_no_fit():
    report = Keymap.from_rules(RENAMES).plan(renamed_checkpoint())
    assert report.target_known is False
    assert report.unused == []
    assert "no target given" in report.format()


def test_report_counts_sources_once():
    source = {"q": torch.zeros(2), "k": torch.zeros(2), "drop.me": torch.zeros(1)}
    rules = [{"concat": {"from": ["q", "k"], "to": "qk"}}, {"split": {"from": "qk", "to": ["a", "b"]}}, {"drop": {"prefix": "drop."}}]
    report = Keymap.from_rules(rules).plan(source)
    assert report.source_count == 3
    assert len(report.mapped) == 2
    assert list(report.dropped) == ["drop.me"]


def test_format_lists_every_section():
    source = renamed_checkpoint()
    source["fc1.weight"] = source["fc1.weight"].half()
    source["extra"] = torch.zeros(1)
    keymap = Keymap.from_rules([*RENAMES, {"name": "unused-rule", "drop": "nothing"}], name="renames")
    text = keymap.plan(source, TwoLayers()).format()
    assert text.splitlines()[0] == "Keymap 'renames': 5 source keys -> 5 keys"
    assert "fc1.weight -> first.weight  (4, 3) float16  [fc1]" in text
    assert "Unchanged (1):\n  extra  (1,) float32" in text
    assert "Unused source keys (1):\n  extra" in text
    assert "Dtype mismatches (1):\n  first.weight: float16, target float32" in text
    assert "Rules that matched no key (1):\n  unused-rule" in text


def test_format_limits_keys_per_section():
    source = {f"k{i}": torch.zeros(1) for i in range(5)}
    text = Keymap.from_rules([{"prefix": {"from": "k", "to": "key"}}]).plan(source).format(max_keys=2)
    assert "  ... and 3 more" in text


def test_as_dict_is_json_serialisable():
    report = Keymap.from_rules(RENAMES).plan(renamed_checkpoint(), TwoLayers())
    data = json.loads(json.dumps(report.as_dict()))
    assert data["mapped"][0]["target"] == "first.weight"
    assert data["mapped"][0]["shape"] == [4, 3]


def test_apply_does_not_modify_source():
    source = renamed_checkpoint()
    keys = list(source)
    Keymap.from_rules(RENAMES).apply(source)
    assert list(source) == keys


def test_apply_rejects_non_string_keys():
    with pytest.raises(KeymapError, match="string keys"):
        Keymap().plan({0: torch.zeros(1)})
