"""Each rule kind of a keymap, the rule syntax and its errors."""

from __future__ import annotations

import pathlib

import pytest
import torch
from omegaconf import OmegaConf

from recoverkit.errors import KeymapError, RecoverkitError
from recoverkit.state_dict.keymap import Keymap, KeyTemplate, resolve_keymap


def mapped_keys(rules, state_dict):
    mapped, _report = Keymap.from_rules(rules, name="test").apply(state_dict)
    return list(mapped)


# Key templates


def test_template_matches_one_segment_per_placeholder():
    template = KeyTemplate("layers.{n}.{param}")
    assert template.match("layers.3.bias") == {"n": "3", "param": "bias"}
    assert template.match("layers.3.norm.bias") is None
    assert template.match("xlayers.3.bias") is None


def test_template_repeated_placeholder_must_agree():
    template = KeyTemplate("block.{n}.sub.{n}")
    assert template.match("block.1.sub.1") == {"n": "1"}
    assert template.match("block.1.sub.2") is None


def test_template_escapes_regex_characters():
    assert KeyTemplate("a+b.(c)").match("a+b.(c)") == {}
    assert KeyTemplate("a.b").match("aXb") is None


# Renames


def test_rename_exact_key():
    state_dict = {"old.weight": torch.ones(2), "other": torch.zeros(1)}
    keys = mapped_keys([{"rename": {"from": "old.weight", "to": "new.weight"}}], state_dict)
    assert keys == ["new.weight", "other"]


def test_rename_template_keeps_values():
    state_dict = {f"enc.{i}.fc.weight": torch.full((2,), float(i)) for i in range(3)}
    mapped, _ = Keymap.from_rules([{"rename": {"from": "enc.{i}.fc.{p}", "to": "layers.{i}.linear.{p}"}}]).apply(state_dict)
    assert list(mapped) == ["layers.0.linear.weight", "layers.1.linear.weight", "layers.2.linear.weight"]
    assert torch.equal(mapped["layers.2.linear.weight"], torch.full((2,), 2.0))


def test_prefix_rename_always():
    state_dict = {"bert.embeddings.w": torch.ones(1), "bert.pooler.w": torch.ones(1), "cls.w": torch.ones(1)}
    keys = mapped_keys([{"prefix": {"from": "bert.", "to": "encoder."}}], state_dict)
    assert keys == ["encoder.embeddings.w", "encoder.pooler.w", "cls.w"]


def test_substring_rename_replaces_every_occurrence():
    state_dict = {"a.atn.b.atn.c": torch.ones(1)}
    assert mapped_keys([{"substring": {"from": ".atn", "to": ".attn"}}], state_dict) == ["a.attn.b.attn.c"]


def test_substring_rename_matches_inside_names():
    state_dict = {"layer.atn.w": torch.ones(1), "layer.atn_proj.w": torch.ones(1)}
    keys = mapped_keys([{"substring": {"from": ".atn", "to": ".attn"}}], state_dict)
    assert keys == ["layer.attn.w", "layer.attn_proj.w"]


def test_regex_rename_with_groups():
    state_dict = {"h.0.attn.c_proj.weight": torch.ones(1), "h.11.mlp.c_fc.bias": torch.ones(1)}
    rules = [{"regex": {"pattern": r"^h\.(\d+)\.(?P<block>attn|mlp)\.(.*)$", "to": r"layers.\1.\g<block>.\3"}}]
    assert mapped_keys(rules, state_dict) == ["layers.0.attn.c_proj.weight", "layers.11.mlp.c_fc.bias"]


def test_regex_must_match_whole_key():
    state_dict = {"prefix.h.0": torch.ones(1)}
    assert mapped_keys([{"regex": {"pattern": r"h\.(\d+)", "to": r"x.\1"}}], state_dict) == ["prefix.h.0"]


def test_regex_unknown_group_is_rejected():
    with pytest.raises(KeymapError, match="group"):
        Keymap.from_rules([{"regex": {"pattern": r"^a\.(\d+)$", "to": r"b.\2"}}])


def test_regex_invalid_pattern_is_rejected():
    with pytest.raises(KeymapError, match="not a valid regular expression"):
        Keymap.from_rules([{"regex": {"pattern": "a(", "to": "b"}}])


def test_rules_apply_in_order():
    state_dict = {"module.enc.w": torch.ones(2, 3)}
    rules = [
        {"prefix": {"from": "module.", "to": ""}},
        {"rename": {"from": "enc.w", "to": "encoder.weight"}},
        {"transpose": {"from": "encoder.weight"}},
    ]
    mapped, report = Keymap.from_rules(rules, name="chain").apply(state_dict)
    assert list(mapped) == ["encoder.weight"]
    assert mapped["encoder.weight"].shape == (3, 2)
    assert report.mapped[0].rules == ("chain rule 1 (prefix)", "chain rule 2 (rename)", "chain rule 3 (transpose)")


# Drops


@pytest.mark.parametrize(
    "drop",
    [
        "pooler.dense.weight",
        {"key": "pooler.dense.{param}"},
        {"prefix": "pooler."},
        {"regex": r"pooler\..*"},
    ],
)
def test_drop_matchers(drop):
    state_dict = {"pooler.dense.weight": torch.ones(1), "pooler.dense.bias": torch.ones(1), "enc.w": torch.ones(1)}
    mapped, report = Keymap.from_rules([{"name": "drop-pooler", "drop": drop}]).apply(state_dict)
    assert "enc.w" in mapped
    assert "pooler.dense.weight" not in mapped
    assert report.dropped["pooler.dense.weight"] == "drop-pooler"


def test_drop_needs_one_matcher():
    with pytest.raises(KeymapError, match="exactly one of"):
        Keymap.from_rules([{"drop": {"prefix": "a.", "regex": "b"}}])


# Tensor transforms


def qkv_state_dict():
    torch.manual_seed(0)
    return {
        f"layer.{i}.{name}.{param}": torch.randn((4, 3) if param == "weight" else (4,))
        for i in range(2)
        for name in ("query", "key", "value")
        for param in ("weight", "bias")
    }


QKV_RULE = {
    "name": "qkv",
    "concat": {
        "from": ["layer.{i}.query.{p}", "layer.{i}.key.{p}", "layer.{i}.value.{p}"],
        "to": "layers.{i}.in_proj_{p}",
        "dim": 0,
    },
}


def test_concat_fuses_projections():
    state_dict = qkv_state_dict()
    mapped, report = Keymap.from_rules([QKV_RULE]).apply(state_dict)
    assert sorted(mapped) == ["layers.0.in_proj_bias", "layers.0.in_proj_weight", "layers.1.in_proj_bias", "layers.1.in_proj_weight"]
    expected = torch.cat([state_dict["layer.1.query.weight"], state_dict["layer.1.key.weight"], state_dict["layer.1.value.weight"]])
    assert torch.equal(mapped["layers.1.in_proj_weight"], expected)
    fused = next(item for item in report.mapped if item.target == "layers.0.in_proj_weight")
    assert fused.sources == ("layer.0.query.weight", "layer.0.key.weight", "layer.0.value.weight")
    assert fused.shape == (12, 3)


def test_concat_missing_partner_names_keys():
    state_dict = qkv_state_dict()
    del state_dict["layer.1.value.bias"]
    with pytest.raises(KeymapError, match=r"layer\.1\.value\.bias"):
        Keymap.from_rules([QKV_RULE]).apply(state_dict)


def test_concat_shape_mismatch_names_shapes():
    state_dict = qkv_state_dict()
    state_dict["layer.0.key.weight"] = torch.zeros(4, 5)
    with pytest.raises(KeymapError) as raised:
        Keymap.from_rules([QKV_RULE]).plan(state_dict)
    message = str(raised.value)
    assert "'layer.0.key.weight' shape (4, 5)" in message
    assert "'layer.0.query.weight' shape (4, 3)" in message


def test_split_equal_parts():
    fused = torch.arange(12.0).reshape(6, 2)
    rule = {"split": {"from": "attn.{n}.in_proj_weight", "to": ["q.{n}.weight", "k.{n}.weight", "v.{n}.weight"]}}
    mapped, _ = Keymap.from_rules([rule]).apply({"attn.0.in_proj_weight": fused})
    assert list(mapped) == ["q.0.weight", "k.0.weight", "v.0.weight"]
    assert torch.equal(mapped["k.0.weight"], fused[2:4])


def test_split_with_sizes_along_dim():
    value = torch.arange(10.0).reshape(2, 5)
    rule = {"split": {"from": "w", "to": ["a", "b"], "dim": 1, "sizes": [2, 3]}}
    mapped, _ = Keymap.from_rules([rule]).apply({"w": value})
    assert torch.equal(mapped["a"], value[:, :2])
    assert torch.equal(mapped["b"], value[:, 2:])


def test_split_pieces_own_their_memory():
    mapped, _ = Keymap.from_rules([{"split": {"from": "w", "to": ["a", "b"]}}]).apply({"w": torch.zeros(4)})
    assert mapped["a"].untyped_storage().data_ptr() != mapped["b"].untyped_storage().data_ptr()


def test_split_not_divisible_is_an_error():
    with pytest.raises(KeymapError, match="not divisible"):
        Keymap.from_rules([{"split": {"from": "w", "to": ["a", "b", "c"]}}]).plan({"w": torch.zeros(4, 2)})


def test_split_sizes_must_sum_to_length():
    with pytest.raises(KeymapError, match="sum to 5, not 4"):
        Keymap.from_rules([{"split": {"from": "w", "to": ["a", "b"], "sizes": [2, 3]}}]).plan({"w": torch.zeros(4)})


def test_split_concat_round_trip():
    state_dict = qkv_state_dict()
    split_rule = {
        "split": {
            "from": "layers.{i}.in_proj_{p}",
            "to": ["layer.{i}.query.{p}", "layer.{i}.key.{p}", "layer.{i}.value.{p}"],
        }
    }
    fused, _ = Keymap.from_rules([QKV_RULE]).apply(state_dict)
    restored, _ = Keymap.from_rules([split_rule]).apply(fused)
    assert sorted(restored) == sorted(state_dict)
    for key, value in state_dict.items():
        assert torch.equal(restored[key], value), key


def test_transpose_with_rename():
    value = torch.arange(6.0).reshape(2, 3)
    rule = {"transpose": {"from": "h.{n}.c_fc.weight", "to": "layers.{n}.linear1.weight", "dims": [1, 0]}}
    mapped, _ = Keymap.from_rules([rule]).apply({"h.0.c_fc.weight": value})
    assert torch.equal(mapped["layers.0.linear1.weight"], value.T)
    assert mapped["layers.0.linear1.weight"].is_contiguous()


def test_transpose_of_vector_is_an_error():
    with pytest.raises(KeymapError, match="1 dimension"):
        Keymap.from_rules([{"transpose": {"from": "b"}}]).plan({"b": torch.zeros(3)})


def test_reshape_infers_one_size():
    value = torch.arange(8.0)
    mapped, _ = Keymap.from_rules([{"reshape": {"from": "pos", "shape": [-1, 4]}}]).apply({"pos": value})
    assert torch.equal(mapped["pos"], value.reshape(2, 4))


def test_reshape_element_count_mismatch_is_an_error():
    with pytest.raises(KeymapError, match=r"'pos' \(shape \(8,\) float32\) to \[3, 3\]"):
        Keymap.from_rules([{"reshape": {"from": "pos", "shape": [3, 3]}}]).plan({"pos": torch.zeros(8)})


def test_transform_of_non_tensor_is_an_error():
    with pytest.raises(KeymapError, match="only transform tensors"):
        Keymap.from_rules([{"transpose": {"from": "step"}}]).plan({"step": 3})


# Rule syntax errors


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"renam": {"from": "a", "to": "b"}}, "unknown key"),
        ({"rename": {"from": "a", "to": "b"}, "drop": "c"}, "2 rule kinds"),
        ({"rename": {"from": "a"}}, r"missing field\(s\) \['to'\]"),
        ({"rename": {"from": "a", "to": "b", "dim": 0}}, r"unknown field\(s\) \['dim'\]"),
        ({"rename": "a"}, "must be a mapping"),
        ({"rename": {"from": "a.{n}", "to": "b.{m}"}}, "placeholder"),
        ({"prefix": {"from": "a.", "to": "b.", "when": "sometimes"}}, "when='sometimes'"),
        ({"substring": {"from": "", "to": "b"}}, "empty 'from'"),
        ({"concat": {"from": ["a"], "to": "b"}}, "at least two"),
        ({"split": {"from": "a", "to": ["b", "c"], "sizes": [1]}}, "one size per target"),
        ({"reshape": {"from": "a", "shape": "3x3"}}, "list of integers"),
        ({"concat": {"from": ["a", "b"], "to": "c", "dim": "0"}}, "must be an integer"),
        ("rename a b", "expected a mapping"),
    ],
)
def test_invalid_rule_is_rejected(rule, expected):
    with pytest.raises(KeymapError, match=expected):
        Keymap.from_rules([rule], name="bad")


def test_invalid_rule_message_names_rule_and_keymap():
    with pytest.raises(KeymapError, match=r"rule 2 of keymap 'mine'"):
        Keymap.from_rules([{"drop": "a"}, {"renam": {}}], name="mine")


def test_keymap_error_is_value_error():
    with pytest.raises(ValueError):
        Keymap.from_rules([{"renam": {}}])
    assert issubclass(KeymapError, RecoverkitError)


# Files and resolving


def test_from_file_reads_name_description_and_rules(tmp_path: pathlib.Path):
    path = tmp_path / "renames.yaml"
    path.write_text(
        "description: test renames\nrules:\n"
        "  - name: fix-typo\n    substring: {from: .mutihead_attn, to: .multihead_attn}\n"
        "  - drop: {prefix: 'aux.'}\n",
        encoding="utf-8",
    )
    keymap = Keymap.from_file(path)
    assert keymap.name == "renames"
    assert keymap.description == "test renames"
    assert [rule.label for rule in keymap.rules] == ["fix-typo", "renames rule 2 (drop)"]


def test_from_file_accepts_a_bare_list(tmp_path: pathlib.Path):
    path = tmp_path / "bare.yaml"
    path.write_text("- rename: {from: a, to: b}\n", encoding="utf-8")
    assert mapped_keys(Keymap.from_file(path).to_spec()["rules"], {"a": torch.ones(1)}) == ["b"]


def test_to_spec_round_trips_every_kind():
    rules = [
        {"rename": {"from": "a.{n}", "to": "b.{n}"}},
        {"prefix": {"from": "m.", "to": "", "when": "every_key"}},
        {"substring": {"from": "x", "to": "y"}},
        {"regex": {"pattern": "^(.*)$", "to": r"\1"}},
        {"drop": "c"},
        {"drop": {"regex": "d.*"}},
        {"concat": {"from": ["e", "f"], "to": "g", "dim": 1}},
        {"split": {"from": "h", "to": ["i", "j"], "dim": 0, "sizes": [1, 2]}},
        {"transpose": {"from": "k", "to": "l", "dims": [0, 1]}},
        {"reshape": {"from": "m", "shape": [2, -1]}},
    ]
    keymap = Keymap.from_rules(rules, name="all")
    assert keymap.to_spec()["rules"] == rules
    assert Keymap.from_spec(keymap.to_spec()).to_spec() == keymap.to_spec()


def test_from_file_invalid_yaml_names_file(tmp_path: pathlib.Path):
    path = tmp_path / "broken.yaml"
    path.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(KeymapError, match="broken.yaml is not valid YAML"):
        Keymap.from_file(path)


def test_from_file_unknown_top_level_key(tmp_path: pathlib.Path):
    path = tmp_path / "typo.yaml"
    path.write_text("rule:\n  - drop: a\n", encoding="utf-8")
    with pytest.raises(KeymapError, match=r"typo.yaml.*unknown key\(s\) \['rule'\]"):
        Keymap.from_file(path)


def test_resolve_keymap_forms(tmp_path: pathlib.Path):
    path = tmp_path / "extra.yaml"
    path.write_text("rules:\n  - drop: aux\n", encoding="utf-8")
    assert resolve_keymap("ddp").name == "ddp"
    assert resolve_keymap(path).name == "extra"
    assert resolve_keymap("extra.yaml", base_dir=tmp_path).name == "extra"
    assert resolve_keymap({"name": "inline-map", "rules": [{"drop": "a"}]}).name == "inline-map"
    assert len(resolve_keymap({"drop": "a"}).rules) == 1
    combined = resolve_keymap(["ddp", {"drop": "a"}, {"drop": "b"}, str(path)])
    assert combined.name == "ddp+inline+extra"
    assert len(combined.rules) == 5


def test_resolve_keymap_from_omegaconf():
    config = OmegaConf.create({"keymap": ["compile", {"rename": {"from": "a", "to": "b"}}]})
    keymap = resolve_keymap(config.keymap)
    assert [rule.kind for rule in keymap.rules] == ["prefix", "prefix", "rename"]


def test_resolve_unknown_name_lists_builtins():
    with pytest.raises(KeymapError, match=r"neither a built-in keymap \['compile', 'ddp'\]"):
        resolve_keymap("dpp")


def test_resolve_rejects_other_types():
    with pytest.raises(KeymapError, match="Cannot use int"):
        resolve_keymap(3)


@pytest.mark.parametrize(
    ("shapes", "dim", "expected"),
    [
        ([(2, 3), (4, 3)], 0, (6, 3)),
        ([(2, 3), (2, 5)], -1, (2, 8)),
        ([(2,), (3,)], 0, (5,)),
    ],
)
def test_concat_plan_shape_equals_real_shape(shapes, dim, expected):
    source = {f"t{i}": torch.zeros(shape) for i, shape in enumerate(shapes)}
    keymap = Keymap.from_rules([{"concat": {"from": list(source), "to": "joined", "dim": dim}}])
    report = keymap.plan(source)
    mapped, _ = keymap.apply(source)
    assert report.mapped[0].shape == expected
    assert tuple(mapped["joined"].shape) == expected


@pytest.mark.parametrize(("shapes", "dim"), [([(2, 3), (2, 3, 1)], 0), ([(2, 3), (2, 3)], 2), ([(), ()], 0)])
def test_concat_invalid_shapes_or_dim(shapes, dim):
    source = {f"t{i}": torch.zeros(shape) for i, shape in enumerate(shapes)}
    with pytest.raises(KeymapError, match="cannot concatenate along dim"):
        Keymap.from_rules([{"concat": {"from": list(source), "to": "joined", "dim": dim}}]).plan(source)


def test_concat_promotes_dtypes_like_torch_cat():
    source = {"a": torch.zeros(2, dtype=torch.float16), "b": torch.zeros(2, dtype=torch.float32)}
    keymap = Keymap.from_rules([{"concat": {"from": ["a", "b"], "to": "ab"}}])
    mapped, report = keymap.apply(source)
    assert report.mapped[0].dtype == "float32"
    assert mapped["ab"].dtype == torch.float32


def test_rename_can_swap_two_keys():
    source = {"a.w": torch.zeros(1), "b.w": torch.ones(1)}
    rules = [{"regex": {"pattern": r"^(a|b)\.w$", "to": r"tmp.\1"}}, {"rename": {"from": "tmp.a", "to": "b.w"}}, {"rename": {"from": "tmp.b", "to": "a.w"}}]
    mapped, _ = Keymap.from_rules(rules).apply(source)
    assert torch.equal(mapped["a.w"], torch.ones(1))
    assert torch.equal(mapped["b.w"], torch.zeros(1))


def test_rename_in_one_rule_frees_target_key():
    source = {"x": torch.zeros(1), "y": torch.ones(1)}
    mapped, _ = Keymap.from_rules([{"regex": {"pattern": "^(x|y)$", "to": "old_\\1"}}]).apply(source)
    assert list(mapped) == ["old_x", "old_y"]
