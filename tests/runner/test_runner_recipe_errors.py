"""Bad recipe values and keys: one message naming the recipe file, the key path and what is accepted."""

from __future__ import annotations

import pathlib

import pytest

from runner_helpers import DIGITS_RECIPE
from recoverkit.errors import RecoverkitError
from recoverkit.runner import load_recipe

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
