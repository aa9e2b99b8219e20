"""Bad configs fail before any file is written, with one message naming file and key path."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from recoverkit.config import load_checkpointer
from recoverkit.errors import ConfigError, RecoverkitError

OBJECTS = """
model:
  _target_: torch.nn.Linear
  in_features: 2
  out_features: 2
optimizer:
  _target_: torch.optim.SGD
  _partial_: true
  lr: 0.1
"""

# (case id, checkpointer section body, key path the message must name, words it must contain)
BAD_SECTIONS = [
    ("unknown key", "retention: {num_to_kep: 3}", "checkpointer.retention.num_to_kep", "unknown key"),
    ("unknown top key", "checkpoint_dir: x", "checkpointer.checkpoint_dir", "checkpoints_dir"),
    ("unknown recoverable key", "recoverables: {model: {ref: model, optional: true}}",
     "checkpointer.recoverables.model.optional", "optional_load"),
    ("wrong type int", "retention: {num_to_keep: three}", "checkpointer.retention.num_to_keep", "an integer"),
    ("wrong type bool", "recoverables: {model: {ref: model, optional_load: maybe}}",
     "checkpointer.recoverables.model.optional_load", "true or false"),
    ("wrong type list", "retention: {min_keys: {a: 1}}", "checkpointer.retention.min_keys", "a list of strings"),
    ("hook module missing", "recoverables: {model: {ref: model, load_hook: 'no_such_module_rk:load'}}",
     "checkpointer.recoverables.model.load_hook", "cannot import module 'no_such_module_rk'"),
    ("hook attribute missing", "recoverables: {model: {ref: model, save_hook: 'recoverkit.hooks:no_such_hook'}}",
     "checkpointer.recoverables.model.save_hook", "has no attribute 'no_such_hook'"),
    ("interpolation refers to nothing", "recoverables: {model: '${ghost}'}",
     "checkpointer.recoverables.model", "'ghost'"),
    ("ref refers to nothing", "recoverables: {model: {ref: ghost}}",
     "checkpointer.recoverables.model.ref", "'ghost'"),
    ("null recoverable", "recoverables: {model: null}", "checkpointer.recoverables.model", "refers to nothing"),
    ("bare unknown string", "recoverables: {model: model}", "checkpointer.recoverables.model", "${name}"),
    ("retention deletes all", "retention: {num_to_keep: 0}", "checkpointer.retention.num_to_keep",
     "every checkpoint would be deleted"),
    ("retention keeps by no key", "retention: {keep_recent: false}", "checkpointer.retention.keep_recent",
     "every checkpoint would be deleted"),
    ("negative epochs", "schedule: {every_n_epochs: -1}", "checkpointer.schedule.every_n_epochs", "positive"),
    ("negative minutes", "schedule: {every_n_minutes: -2.5}", "checkpointer.schedule.every_n_minutes", "positive"),
    ("zero steps", "schedule: {every_n_steps: 0}", "checkpointer.schedule.every_n_steps", "positive"),
    ("unknown signal", "schedule: {on_signals: [SIGTERM, SIGNOPE]}", "checkpointer.schedule.on_signals.1",
     "SIGNOPE"),
    ("unknown importance key", "retention: {importance_keys: [freshness]}",
     "checkpointer.retention.importance_keys.0", "recency"),
    ("predicate not importable", "retention: {ckpt_predicate: 'recoverkit:no_predicate'}",
     "checkpointer.retention.ckpt_predicate", "no_predicate"),
    ("unknown builtin", "recoverables: {clock: {builtin: wall_clock}}", "checkpointer.recoverables.clock.builtin",
     "epoch_counter"),
    ("epoch counter without limit", "recoverables: {epochs: {builtin: epoch_counter}}",
     "checkpointer.recoverables.epochs.limit", "limit"),
    ("partial object as recoverable", "recoverables: {optimizer: '${optimizer}'}",
     "checkpointer.recoverables.optimizer", "partial"),
    ("keymap for unknown recoverable", "keymaps: {encoder: ddp}", "checkpointer.keymaps.encoder", "model"),
    ("keymap not found", "keymaps: {model: no_such_keymap}", "checkpointer.keymaps.model", "no_such_keymap"),
    ("keymap with load hook", "recoverables: {model: {ref: model, load_hook: 'recoverkit:torch_recovery'}}\n"
     "keymaps: {model: ddp}", "checkpointer.keymaps.model", "load_hook"),
    ("transfer source missing", "transfer: [{source: /no/such/run, recoverables: [model]}]",
     "checkpointer.transfer.0.source", "does not exist"),
    ("transfer recoverable unknown", "transfer: [{source: '.', recoverables: [decoder]}]",
     "checkpointer.transfer.0.recoverables.0", "decoder"),
]


def _write_recipe(tmp_path: pathlib.Path, section_body: str) -> pathlib.Path:
    body = textwrap.indent(section_body, "  ")
    text = (
        OBJECTS
        + "checkpointer:\n"
        + f"  checkpoints_dir: {tmp_path / 'ckpts'}\n"
        + ("  recoverables: {model: '${model}'}\n" if "recoverables:" not in section_body else "")
        + body
        + "\n"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("section_body", "key_path", "words"),
    [case[1:] for case in BAD_SECTIONS],
    ids=[case[0] for case in BAD_SECTIONS],
)
def test_bad_section_names_key_path(tmp_path: pathlib.Path, section_body: str, key_path: str, words: str) -> None:
    path = _write_recipe(tmp_path, section_body)

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    message = str(raised.value)
    assert str(path) in message
    assert key_path in message
    assert words in message
    assert raised.value.key_path == key_path
    assert not (tmp_path / "ckpts").exists()


@pytest.mark.parametrize(
    "section_body",
    ["retention: {num_to_kep: 3}", "recoverables: {model: {ref: model, load_hook: 'no_such_module_rk:load'}}"],
    ids=["omegaconf error", "import error"],
)
def test_bad_section_hides_library_traceback(tmp_path: pathlib.Path, section_body: str) -> None:
    path = _write_recipe(tmp_path, section_body)

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__ is True


def test_config_error_is_value_error(tmp_path: pathlib.Path) -> None:
    path = _write_recipe(tmp_path, "retention: {num_to_keep: 0}")

    with pytest.raises(ValueError) as raised:
        load_checkpointer(path)

    assert isinstance(raised.value, RecoverkitError)


def test_missing_section_names_checkpointer(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nosection.yaml"
    path.write_text(OBJECTS, encoding="utf-8")

    with pytest.raises(ConfigError, match=r"nosection\.yaml: checkpointer: the section is missing"):
        load_checkpointer(path)


def test_missing_checkpoints_dir(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nodir.yaml"
    path.write_text(OBJECTS + "checkpointer: {recoverables: {model: '${model}'}}\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"checkpointer\.checkpoints_dir: the value is missing"):
        load_checkpointer(path)


def test_target_that_does_not_import(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "target.yaml"
    path.write_text(
        "model: {_target_: torch.nn.NoSuchLayer}\n"
        f"checkpointer: {{checkpoints_dir: {tmp_path / 'ckpts'}, recoverables: {{model: '${{model}}'}}}}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert "model._target_" in str(raised.value)
    assert "NoSuchLayer" in str(raised.value)


def test_wrong_constructor_argument(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "args.yaml"
    path.write_text(
        "model: {_target_: torch.nn.Linear, in_features: 2, out_featurez: 2}\n"
        f"checkpointer: {{checkpoints_dir: {tmp_path / 'ckpts'}, recoverables: {{model: '${{model}}'}}}}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert f"{path}: model: calling torch.nn.Linear failed" in str(raised.value)
    assert not (tmp_path / "ckpts").exists()


def test_override_of_unknown_key(tmp_path: pathlib.Path) -> None:
    path = _write_recipe(tmp_path, "")

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path, ["checkpointer.retention.num_to_kep=3"])

    assert str(path) in str(raised.value)
    assert "num_to_kep" in str(raised.value)


def test_unresolvable_interpolation(tmp_path: pathlib.Path) -> None:
    path = _write_recipe(tmp_path, "retention: ${retention}")

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert "checkpointer.retention: the value cannot be resolved" in str(raised.value)


def test_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="absent.yaml: cannot read the file"):
        load_checkpointer(tmp_path / "absent.yaml")


def test_hyperpyyaml_bad_class_names_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad_hparams.yaml"
    path.write_text(
        "model: !new:torch.nn.NoSuchLayer\n"
        "    in_features: 2\n"
        "checkpointer: !new:recoverkit.Checkpointer\n"
        f"    checkpoints_dir: {tmp_path / 'ckpts'}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert f"{path}: model: loading the HyperPyYAML file failed (line 1)" in str(raised.value)
    assert raised.value.__cause__ is None


def test_hyperpyyaml_unknown_schema_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad_schema.hpy.yaml"
    path.write_text(
        "model: !new:torch.nn.Linear {in_features: 2, out_features: 2}\n"
        "checkpointer:\n"
        f"    checkpoints_dir: {tmp_path / 'ckpts'}\n"
        "    recoverables: {model: !ref <model>}\n"
        "    schedule: {every_n_epoch: 2}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert "checkpointer.schedule.every_n_epoch: unknown key" in str(raised.value)
    assert not (tmp_path / "ckpts").exists()


def test_configstore_schema_validates_at_compose(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "typed.yaml"
    path.write_text(
        "defaults:\n  - /schema/checkpointer@checkpointer\n  - _self_\n"
        f"checkpointer:\n  checkpoints_dir: {tmp_path / 'ckpts'}\n  retention: {{num_to_kep: 3}}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert str(path) in str(raised.value)
    assert "checkpointer.retention.num_to_kep" in str(raised.value)


def test_yaml_syntax_error_names_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  in_features: 2\n  sizes: [1,\n", encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert f"{path}: model.sizes: the file is not valid YAML at line 4" in str(raised.value)
    assert raised.value.__cause__ is None


def test_keymap_strict_wrong_type(tmp_path: pathlib.Path) -> None:
    path = _write_recipe(tmp_path, "keymaps: {model: {keymap: ddp, strict: sometimes}}")

    with pytest.raises(ConfigError) as raised:
        load_checkpointer(path)

    assert "checkpointer.keymaps.model.strict" in str(raised.value)
    assert not (tmp_path / "ckpts").exists()
