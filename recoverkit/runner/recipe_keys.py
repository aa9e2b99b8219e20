"""Rejecting misspelt recipe keys before anything trains.

The runner checks the keys of the sections it reads itself (``trainer``,
``data``, ``average``) against the keys it uses, and the top-level keys against the ones it reads. A user-defined top-level key is accepted only if
it declares an object (``_target_`` in Hydra, ``!new:``/``!name:`` in
HyperPyYAML) or if another value refers to it (``${key}`` or ``ref: key``
in Hydra, ``!ref <key>`` in HyperPyYAML). Anything else is a plain value
that nothing reads, such as a misspelt ``epochz: 3``.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from recoverkit.errors import RecipeError

__all__ = ["RUNNER_KEYS", "SECTION_KEYS", "check_recipe_keys"]

# Top-level keys the runner or the config layer reads; ``defaults`` and
# ``hydra`` belong to Hydra.
RUNNER_KEYS = (
    "seed",
    "epochs",
    "model",
    "optimizer",
    "lr_scheduler",
    "grad_scaler",
    "loss",
    "metrics",
    "data",
    "trainer",
    "average",
    "output_dir",
    "checkpointer",
    "defaults",
    "hydra",
)

SECTION_KEYS = {
    "trainer": (
        "lr_scheduler_interval",
        "max_grad_norm",
        "monitor",
        "monitor_mode",
        "device",
        "log_every_n_batches",
        "threads",
    ),
    "data": ("train", "valid", "test", "batch_size", "eval_batch_size", "num_workers"),
    "average": ("count", "select"),
}


def check_recipe_keys(
    recipe_path: pathlib.Path,
    sections: Mapping[str, Any],
    is_object: Mapping[str, bool],
    referenced_text: str,
    hyperpyyaml: bool,
) -> None:
    """Raise a RecipeError for the first unknown key of a runner section or of the top level.

    Parameters
    ----------
    recipe_path : pathlib.Path
        Named in the error.
    sections : mapping
        The recipe's top-level keys and values (unbuilt for Hydra).
    is_object : mapping of str to bool
        For each top-level key, whether its value declares an object.
    referenced_text : str
        Text in which references to top-level keys are searched: the
        unresolved composed config (Hydra) or the recipe file (HyperPyYAML).
    hyperpyyaml : bool
        Selects the reference syntax: ``!ref <key>`` or ``${key}``/``ref: key``.
    """
    for section, accepted in SECTION_KEYS.items():
        value = sections.get(section)
        if not isinstance(value, Mapping):
            continue
        for key in value:
            if str(key) not in accepted:
                raise RecipeError(
                    f"Recipe {recipe_path}: unknown key {section}.{key}. Accepted keys of {section}: "
                    f"{', '.join(accepted)}."
                )
    for key in sections:
        key = str(key)
        if key in RUNNER_KEYS or is_object.get(key, False) or _is_referenced(key, referenced_text, hyperpyyaml):
            continue
        raise RecipeError(
            f"Recipe {recipe_path}: unknown top-level key {key!r}. The runner reads "
            f"{_listed(RUNNER_KEYS)}. Any other top-level key must declare an object "
            f"({'!new: or !name:' if hyperpyyaml else '_target_'}) or be referred to by another value "
            f"({'!ref <' + key + '>' if hyperpyyaml else '${' + key + '}'}); fix its spelling or remove it."
        )


def _is_referenced(key: str, text: str, hyperpyyaml: bool) -> bool:
    name = re.escape(key)
    if hyperpyyaml:
        pattern = rf"<{name}(?:[.\[>])"
    else:
        pattern = rf"\$\{{\s*{name}\s*(?:[.\[}}])|\bref:\s*['\"]?{name}\b"
    return re.search(pattern, text) is not None


def _listed(keys: Iterable[str]) -> str:
    return ", ".join(keys)
