"""Building Checkpointers from Hydra/OmegaConf configs, then saving, recovering and pruning."""

from __future__ import annotations

import pathlib

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from recoverkit import Checkpointer, EpochCounter, RNGState
from recoverkit.config import (
    LoadedCheckpointer,
    RetentionPolicy,
    SaveSchedule,
    compose_config,
    load_checkpointer,
)

RECIPE = """
defaults:
  - /checkpointer: default
  - /retention: latest
  - /schedule: every_epoch
  - _self_
model:
  _target_: torch.nn.Linear
  in_features: 4
  out_features: 2
optimizer:
  _target_: torch.optim.SGD
  params: {_target_: recoverkit.config.parameters_of, module: "${model}"}
  lr: 0.1
checkpointer:
  checkpoints_dir: CKPT_DIR
  recoverables:
    model: ${model}
    optimizer: {ref: optimizer, optional_load: true}
    epochs: {builtin: epoch_counter, limit: 5}
"""


@pytest.fixture
def recipe(write_config, tmp_path: pathlib.Path) -> pathlib.Path:
    return write_config("recipe/train.yaml", RECIPE.replace("CKPT_DIR", str(tmp_path / "ckpts")))


def _set_weights(model: torch.nn.Linear, value: float) -> None:
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(value)


def test_hydra_recipe_builds_checkpointer(recipe: pathlib.Path, tmp_path: pathlib.Path) -> None:
    loaded = load_checkpointer(recipe)

    assert isinstance(loaded, LoadedCheckpointer)
    assert isinstance(loaded.checkpointer, Checkpointer)
    assert loaded.checkpointer.checkpoints_dir == tmp_path / "ckpts"
    assert sorted(loaded.checkpointer.recoverables) == ["epochs", "model", "optimizer", "rng"]
    assert isinstance(loaded.recoverables["rng"], RNGState)
    assert isinstance(loaded.epoch_counter, EpochCounter)
    assert loaded.epoch_counter.limit == 5
    assert loaded.checkpointer.optional_load == {"optimizer"}
    assert sorted(loaded.objects) == ["model", "optimizer"]
    assert isinstance(loaded.config, DictConfig)


def test_recoverables_share_objects_with_config(recipe: pathlib.Path) -> None:
    loaded = load_checkpointer(recipe)
    model = loaded.objects["model"]
    optimizer = loaded.objects["optimizer"]

    assert loaded.recoverables["model"] is model
    assert loaded.recoverables["optimizer"] is optimizer
    assert optimizer.param_groups[0]["params"][0] is model.weight


def test_hydra_checkpointer_saves_and_recovers(recipe: pathlib.Path) -> None:
    first = load_checkpointer(recipe)
    _set_weights(first.objects["model"], 0.25)
    next(first.epoch_counter)
    first.save_and_keep_only(meta={"epoch": 1})

    second = load_checkpointer(recipe)
    _set_weights(second.objects["model"], -1.0)
    recovered = second.checkpointer.recover_if_possible()

    assert recovered is not None
    assert recovered.meta["epoch"] == 1
    assert torch.equal(second.objects["model"].weight, torch.full((2, 4), 0.25))
    assert second.epoch_counter.current == 1


def test_group_override_selects_retention(recipe: pathlib.Path) -> None:
    loaded = load_checkpointer(recipe, ["retention=best_valid_loss", "retention.num_to_keep=3"])

    assert loaded.retention == RetentionPolicy(num_to_keep=3, keep_recent=True, min_keys=("valid_loss",))


def test_retention_from_config_prunes_checkpoints(recipe: pathlib.Path) -> None:
    loaded = load_checkpointer(recipe, ["retention=best_valid_loss", "retention.keep_recent=false"])
    for epoch, loss in enumerate([0.5, 0.2, 0.9, 0.4], start=1):
        loaded.save_and_keep_only(meta={"epoch": epoch, "valid_loss": loss})

    kept = loaded.checkpointer.list_checkpoints()

    assert [ckpt.meta["valid_loss"] for ckpt in kept] == [0.2]


def test_keep_every_n_epochs_from_config(recipe: pathlib.Path) -> None:
    loaded = load_checkpointer(recipe, ["retention=periodic", "retention.keep_every_n_epochs=3"])
    for epoch in range(1, 8):
        loaded.save_and_keep_only(meta={"epoch": epoch})

    epochs = sorted(ckpt.meta["epoch"] for ckpt in loaded.checkpointer.list_checkpoints())

    # Epochs 3 and 6 are protected; the two newest of the others are kept.
    assert epochs == [3, 5, 6, 7]


def test_schedule_group_preemptible(recipe: pathlib.Path) -> None:
    loaded = load_checkpointer(recipe, ["schedule=preemptible", "schedule.every_n_minutes=0.5"])

    assert loaded.schedule == SaveSchedule(every_n_epochs=1, every_n_minutes=0.5, signals=("SIGTERM", "SIGINT"))


def test_given_objects_replace_config_keys(recipe: pathlib.Path) -> None:
    model = torch.nn.Linear(4, 2)
    loaded = load_checkpointer(recipe, objects={"model": model})

    assert loaded.recoverables["model"] is model
    assert loaded.objects["model"] is model
    assert loaded.objects["optimizer"].param_groups[0]["params"][0] is model.weight


def test_compose_config_returns_composed_config(recipe: pathlib.Path) -> None:
    config = compose_config(recipe, ["retention=best_valid_loss"])

    assert isinstance(config, DictConfig)
    assert list(config.retention.min_keys) == ["valid_loss"]
    assert config.checkpointer.retention.min_keys == ["valid_loss"]
    assert config.model._target_ == "torch.nn.Linear"


def test_dict_source_with_dotlist_overrides(tmp_path: pathlib.Path) -> None:
    source = {
        "net": {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 2},
        "checkpointer": {
            "checkpoints_dir": str(tmp_path / "a"),
            "recoverables": {"net": "${net}", "rng": "rng"},
            "schedule": {"every_n_epochs": None, "every_n_steps": 50},
        },
    }
    loaded = load_checkpointer(source, [f"checkpointer.checkpoints_dir={tmp_path / 'b'}"])

    assert loaded.checkpointer.checkpoints_dir == tmp_path / "b"
    assert loaded.schedule.should_save_at_step(100) is True
    assert loaded.schedule.should_save_at_epoch_end(1) is False
    assert loaded.source == "<dict>"


def test_dictconfig_source_with_object_by_name(tmp_path: pathlib.Path) -> None:
    config = OmegaConf.create(
        {"checkpointer": {"checkpoints_dir": str(tmp_path), "recoverables": {"net": {"ref": "net"}}}}
    )
    net = torch.nn.Linear(3, 3)

    loaded = load_checkpointer(config, objects={"net": net})

    assert loaded.recoverables["net"] is net
    assert loaded.objects == {"net": net}


def test_custom_hooks_by_import_path(write_config, tmp_path: pathlib.Path) -> None:
    hooks = write_config(
        "rk_test_hooks_module.py",
        """
        calls = []

        def save_counter(obj, path):
            calls.append("save")
            path.write_text(str(obj.current))

        def load_counter(obj, path, end_of_epoch):
            calls.append("load")
            obj.current = int(path.read_text())
        """,
    )
    import sys

    sys.path.insert(0, str(hooks.parent))
    try:
        loaded = load_checkpointer(
            {
                "counter": {"_target_": "recoverkit.EpochCounter", "limit": 9},
                "checkpointer": {
                    "checkpoints_dir": str(tmp_path / "ckpts"),
                    "recoverables": {
                        "counter": {
                            "ref": "counter",
                            "save_hook": "rk_test_hooks_module:save_counter",
                            "load_hook": "rk_test_hooks_module.load_counter",
                        }
                    },
                },
            }
        )
        loaded.objects["counter"].current = 7
        loaded.checkpointer.save_checkpoint()
        loaded.objects["counter"].current = 0
        loaded.checkpointer.recover_if_possible()
        import rk_test_hooks_module

        assert loaded.objects["counter"].current == 7
        assert rk_test_hooks_module.calls == ["save", "load"]
    finally:
        sys.path.remove(str(hooks.parent))
        sys.modules.pop("rk_test_hooks_module", None)


def test_checkpointer_as_target_node(tmp_path: pathlib.Path) -> None:
    source = {
        "model": {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 2},
        "checkpointer": {
            "_target_": "recoverkit.Checkpointer",
            "checkpoints_dir": str(tmp_path / "ckpts"),
            "recoverables": {"model": "${model}"},
        },
    }

    loaded = load_checkpointer(source)

    assert isinstance(loaded.checkpointer, Checkpointer)
    assert loaded.recoverables["model"] is loaded.objects["model"]
    assert loaded.retention == RetentionPolicy()


def test_compose_inside_running_hydra_app(recipe: pathlib.Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    conf_dir = pathlib.Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
        inner = compose_config(recipe, ["schedule=preemptible"])
        outer = compose(config_name="config")

    assert list(inner.schedule.on_signals) == ["SIGTERM", "SIGINT"]
    assert outer.retention.num_to_keep == 1
    assert GlobalHydra.instance().is_initialized() is False
