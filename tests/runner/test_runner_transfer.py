"""A recipe's transfer section reaches the runner, with the recipe's own load hook."""

from __future__ import annotations

import pathlib
import shutil

import torch

from runner_helpers import REPO_ROOT
from recoverkit.runner import run_recipe

SINE_DIR = REPO_ROOT / "recipes" / "sine_forecast"
TINY_SINE = (
    "epochs=1",
    "data.train.num_sequences=64",
    "data.valid.num_sequences=32",
    "data.test.num_sequences=32",
    "data.batch_size=32",
)

HOOK_MODULE = '''
import json
import pathlib

import torch

CALLS = pathlib.Path(__file__).with_name("hook_calls.json")


def load_and_record(obj, path):
    obj.load_state_dict(torch.load(path, weights_only=True))
    calls = json.loads(CALLS.read_text()) if CALLS.exists() else []
    calls.append(str(path))
    CALLS.write_text(json.dumps(calls))
'''


def make_recipe(folder: pathlib.Path, weights: pathlib.Path) -> pathlib.Path:
    """Copy the sine recipe into ``folder`` with a load hook on the model and a transfer section."""
    shutil.copy(SINE_DIR / "sine_task.py", folder / "sine_task.py")
    (folder / "transfer_hooks.py").write_text(HOOK_MODULE)
    text = (SINE_DIR / "train.yaml").read_text()
    original = "        model: !ref <model>\n"
    assert original in text
    text = text.replace(
        original,
        "        model: {ref: !ref <model>, load_hook: transfer_hooks:load_and_record}\n",
    )
    text = text.replace(
        "    schedule:\n",
        f"    transfer:\n        - source: {weights}\n          recoverables: [model]\n    schedule:\n",
        1,
    )
    recipe = folder / "train.yaml"
    recipe.write_text(text)
    return recipe


def test_transfer_uses_recipe_load_hook(tmp_path: pathlib.Path) -> None:
    import sys

    sys.path.insert(0, str(SINE_DIR))
    try:
        import sine_task
    finally:
        sys.path.remove(str(SINE_DIR))
    weights = tmp_path / "pretrained.pt"
    pretrained = sine_task.GRUForecaster(hidden=24)
    torch.save(pretrained.state_dict(), weights)
    recipe_dir = tmp_path / "recipe"
    recipe_dir.mkdir()
    recipe = make_recipe(recipe_dir, weights)

    results = run_recipe(recipe, TINY_SINE, tmp_path / "outputs")

    calls = (recipe_dir / "hook_calls.json").read_text()
    assert str(weights) in calls
    assert results["epochs"] == 1
