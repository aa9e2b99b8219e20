"""Bad recipe values and keys: one message naming the recipe file, the key path and what is accepted."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from runner_helpers import DIGITS_RECIPE, REPO_ROOT
from recoverkit.errors import RecipeError, RecoverkitError
from recoverkit.runner import load_recipe

SINE_RECIPE = REPO_ROOT / "recipes" / "sine_forecast" / "train.yaml"

BAD_VALUES = [
    ("schedule.every_n_steps=-5", "checkpointer.schedule.every_n_steps", "positive"),
    ("retention.num_to_keep=three", "checkpointer.retention.num_to_keep", "an integer"),
    ("checkpointer.recoverables.model.ref=nothing", "checkpointer.recoverables.model.ref", "'nothing'"),
    ("epochs=ten", "epochs is 'ten'", "an integer >= 1"),
    ("seed=one", "seed is 'one'", "an integer"),
    ("data.batch_size=0", "data.batch_size is 0", "an integer >= 1"),
    ("metrics.accuracy=digits_task:acc", "metrics.accuracy", "an import path"),
]


@pytest.mark.parametrize(("override", "key_text", "accepted_text"), BAD_VALUES)
def test_bad_value_message(tmp_path: pathlib.Path, override: str, key_text: str, accepted_text: str) -> None:
    with pytest.raises(RecoverkitError) as rejected:
        load_recipe(DIGITS_RECIPE, [override], tmp_path)

    message = str(rejected.value)
    assert message.count(str(DIGITS_RECIPE)) == 1, message
    assert "<DictConfig>" not in message
    assert key_text in message
    assert accepted_text in message


UNKNOWN_KEYS = [
    ("+epochz=3", "unknown top-level key 'epochz'", "The runner reads seed, epochs"),
    ("+trainer.log_every_n_bachtes=20", "unknown key trainer.log_every_n_bachtes", "log_every_n_batches"),
    ("+trainer.monitr=valid_loss", "unknown key trainer.monitr", "monitor, monitor_mode"),
    ("+data.shuffle=true", "unknown key data.shuffle", "batch_size, eval_batch_size"),
    ("+average.cnt=2", "unknown key average.cnt", "count, select"),
]


@pytest.mark.parametrize(("override", "problem", "accepted_text"), UNKNOWN_KEYS)
def test_unknown_key_rejected(tmp_path: pathlib.Path, override: str, problem: str, accepted_text: str) -> None:
    with pytest.raises(RecipeError) as rejected:
        load_recipe(DIGITS_RECIPE, [override], tmp_path)

    message = str(rejected.value)
    assert str(DIGITS_RECIPE) in message
    assert problem in message
    assert accepted_text in message


def test_user_object_and_referenced_keys_accepted(tmp_path: pathlib.Path) -> None:
    overrides = ["+hidden_size=64", "model.hidden=${hidden_size}", "+extra={_target_: collections.OrderedDict}"]

    recipe = load_recipe(DIGITS_RECIPE, overrides, tmp_path)

    assert recipe.task.model is not None


def copy_sine_recipe(folder: pathlib.Path, extra_line: str) -> pathlib.Path:
    for source in SINE_RECIPE.parent.glob("*.py"):
        shutil.copy(source, folder / source.name)
    recipe = folder / "train.yaml"
    recipe.write_text(SINE_RECIPE.read_text(encoding="utf-8") + extra_line + "\n", encoding="utf-8")
    return recipe


def test_hyperpyyaml_plain_unknown_key_rejected(tmp_path: pathlib.Path) -> None:
    recipe = copy_sine_recipe(tmp_path, "epochz: 3")

    with pytest.raises(RecipeError, match="unknown top-level key 'epochz'.*!ref <epochz>"):
        load_recipe(recipe, [], tmp_path / "out")


def test_hyperpyyaml_object_key_accepted(tmp_path: pathlib.Path) -> None:
    recipe = copy_sine_recipe(tmp_path, "spare_loss: !new:torch.nn.L1Loss")

    loaded = load_recipe(recipe, [], tmp_path / "out")

    assert loaded.task.epochs.limit == 5
