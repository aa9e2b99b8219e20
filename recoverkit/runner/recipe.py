"""Loading a recipe file into a ready :class:`TrainingTask` and checkpointer.

A recipe is a Hydra/OmegaConf file (objects declared with ``_target_``) or a
HyperPyYAML file (``!new:``, ``!name:``, ``!ref``). Both are read through
:mod:`recoverkit.config`, which builds the ``checkpointer:`` section. The
runner reads these top-level keys; only ``model``, ``optimizer``, ``loss``
and ``data.train`` are required:

``seed``
    Seeds every generator before anything is built and fixes the data order.
``epochs``
    The last epoch, unless the checkpointer declares an epoch counter.
``model``, ``loss``, ``metrics``
    The module, ``loss(outputs, targets)``, and a mapping of metric name to
    ``metric(outputs, targets)``. A metric may be an import path string.
``optimizer``, ``lr_scheduler``, ``grad_scaler``
    Built objects, or callables that take the model's parameters (the
    optimizer) or the optimizer (the scheduler), such as Hydra's
    ``_partial_: true`` and HyperPyYAML's ``!name:``.
``data``
    ``train``, ``valid`` and ``test`` datasets, ``batch_size``,
    ``eval_batch_size`` and ``num_workers``.
``trainer``
    Options of :class:`TrainingTask`: ``lr_scheduler_interval``,
    ``max_grad_norm``, ``monitor``, ``monitor_mode``, ``device``,
    ``log_every_n_batches``, ``threads``.
``average``
    ``{count: k, select: last|best}`` to average checkpoints at the end.
``output_dir``
    Set by the runner to the run's folder; refer to it for
    ``checkpointer.checkpoints_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import numbers
import pathlib
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from recoverkit.checkpointer import Checkpointer
from recoverkit.config.imports import import_by_path
from recoverkit.config.schedule import SaveSchedule
from recoverkit.errors import RecipeError
from recoverkit.recoverables import EpochCounter
from recoverkit.runner.recipe_keys import check_recipe_keys
from recoverkit.runner.task import TrainingTask

__all__ = ["Recipe", "is_hyperpyyaml", "load_recipe", "load_recipe_config", "seed_everything"]

logger = logging.getLogger(__name__)

_TRAINER_OPTIONS = ("lr_scheduler_interval", "max_grad_norm", "monitor", "monitor_mode", "device", "log_every_n_batches")


@dataclasses.dataclass
class Recipe:
    """A loaded recipe: the built task, its checkpointer and when to save.

    Attributes
    ----------
    path : pathlib.Path
        The recipe file.
    overrides : tuple of str
        The command-line overrides, without the runner's ``output_dir``.
    output_dir : pathlib.Path
        The run's folder.
    task : TrainingTask
        The built objects.
    checkpointer : Checkpointer
        Built by the config layer from the ``checkpointer:`` section.
    schedule : SaveSchedule
        When to save.
    retention : object or None
        The retention policy (with ``delete_kwargs()``), if the recipe declares one.
    transfers : list
        Transfer sources to apply before training when no checkpoint exists.
    load_hooks : dict
        The ``load_hook`` entries the recipe declares, by recoverable name;
        transfers use them before any default hook.
    """

    path: pathlib.Path
    overrides: tuple[str, ...]
    output_dir: pathlib.Path
    task: TrainingTask
    checkpointer: Checkpointer
    schedule: SaveSchedule
    retention: Any = None
    transfers: Sequence[Any] = ()
    load_hooks: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's generators with ``seed``."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(seed % 2**32)


def is_hyperpyyaml(path: pathlib.Path) -> bool:
    """Return whether the recipe file is read as HyperPyYAML rather than as a Hydra config."""
    from recoverkit.config.hyperpyyaml_frontend import is_hyperpyyaml as uses_hyperpyyaml

    return uses_hyperpyyaml(path, path.read_text(encoding="utf-8"))


def load_recipe(path: str | pathlib.Path, overrides: Sequence[str], output_dir: str | pathlib.Path) -> Recipe:
    """Build everything a recipe declares, for a run writing into ``output_dir``.

    The recipe's folder is put first on ``sys.path``, so its ``_target_`` and
    ``!new:`` paths may name modules that sit next to it.

    Raises
    ------
    RecipeError
        If a required key is missing or a value has the wrong kind.
    ConfigError
        If the config layer rejects the file or an override.
    """
    from recoverkit.config import compose_config, load_checkpointer

    recipe_path = pathlib.Path(path).resolve()
    if not recipe_path.is_file():
        raise RecipeError(f"Recipe file {path} not found. Pass the path of a recipe YAML file.")
    output_dir = pathlib.Path(output_dir).resolve()
    _put_on_sys_path(recipe_path.parent)
    overrides = tuple(overrides)

    if not is_hyperpyyaml(recipe_path):
        config = compose_config(recipe_path, [*overrides, f"++output_dir={hydra_quoted(str(output_dir))}"])
        return load_recipe_config(config, recipe_path, overrides, output_dir)
    # A HyperPyYAML file builds its objects while it is read, so seed first.
    seed_everything(_plain_seed(recipe_path, overrides))
    # JSON quoting keeps a path with ':' or '#' a plain YAML string.
    loaded = load_checkpointer(recipe_path, overrides=[*overrides, f"output_dir={json.dumps(str(output_dir))}"])
    values = {**loaded.config, **loaded.objects}
    check_recipe_keys(
        recipe_path,
        values,
        is_object={key: not _is_plain(value) for key, value in values.items()},
        referenced_text=recipe_path.read_text(encoding="utf-8"),
        hyperpyyaml=True,
    )
    seed_everything(_as_int(values.get("seed"), "seed", recipe_path, default=0))
    task = _build_task(values, recipe_path)
    return _recipe(recipe_path, overrides, output_dir, loaded, task)


def load_recipe_config(
    config: Any, recipe_path: pathlib.Path, overrides: Sequence[str], output_dir: pathlib.Path
) -> Recipe:
    """Build a Hydra recipe from its composed config, whose ``output_dir`` is already set.

    A Hydra multirun job calls this with the config Hydra composed for it.
    The runner builds the model, optimizer and LR scheduler before the
    checkpointer, because a ``_partial_`` optimizer needs the model's
    parameters, and passes them to the config layer so the checkpointer
    saves these very objects.
    """
    from recoverkit.config import load_checkpointer

    from omegaconf import OmegaConf

    _put_on_sys_path(recipe_path.parent)
    raw = OmegaConf.to_container(config, resolve=False)
    check_recipe_keys(
        recipe_path,
        raw,
        is_object={str(key): isinstance(value, dict) and "_target_" in value for key, value in raw.items()},
        referenced_text=OmegaConf.to_yaml(config),
        hyperpyyaml=False,
    )
    seed_everything(_as_int(config.get("seed"), "seed", recipe_path, default=0))
    values = _build_hydra_values(config, recipe_path)
    task = _build_task(values, recipe_path)
    values.update(optimizer=task.optimizer, lr_scheduler=task.lr_scheduler)
    loaded = load_checkpointer(
        config,
        objects={key: value for key, value in values.items() if value is not None},
        source_name=str(recipe_path),
    )
    return _recipe(recipe_path, tuple(overrides), output_dir, loaded, task)


def _recipe(recipe_path: pathlib.Path, overrides: Sequence[str], output_dir: pathlib.Path, loaded: Any, task: TrainingTask) -> Recipe:
    if loaded.epoch_counter is not None:
        task.epochs = loaded.epoch_counter
    elif task.epochs.limit == 0:
        raise RecipeError(
            f"Recipe {recipe_path} sets no number of epochs. Add 'epochs: N', or declare an "
            "epoch counter among the checkpointer's recoverables ({builtin: epoch_counter, limit: N})."
        )
    return Recipe(
        path=recipe_path,
        overrides=tuple(overrides),
        output_dir=output_dir,
        task=task,
        checkpointer=loaded.checkpointer,
        schedule=loaded.schedule,
        retention=loaded.retention,
        transfers=list(loaded.transfers),
        load_hooks=dict(loaded.load_hooks),
    )


def _plain_seed(recipe_path: pathlib.Path, overrides: Sequence[str]) -> int:
    """Return the ``seed`` of a HyperPyYAML recipe without building its objects.

    The last ``seed=N`` override wins, then a plain top-level ``seed: N`` in
    the file. A seed given by a tag (``!ref``) cannot be read this way and
    counts as 0 here, while training still uses the built value.
    """
    import yaml

    for override in reversed(overrides):
        key, _, value = override.partition("=")
        if key.strip() == "seed":
            return _as_seed(yaml.safe_load(value))

    class TagIgnoringLoader(yaml.SafeLoader):
        pass

    TagIgnoringLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        content = yaml.load(recipe_path.read_text(encoding="utf-8"), Loader=TagIgnoringLoader)  # noqa: S506
    except yaml.YAMLError:
        return 0  # loading the recipe reports the syntax error with its key path
    return _as_seed(content.get("seed") if isinstance(content, dict) else None)


def _is_plain(value: Any) -> bool:
    """Return whether ``value`` is plain YAML data rather than an object a tag built."""
    if isinstance(value, Mapping):
        return all(_is_plain(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _as_seed(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def hydra_quoted(text: str) -> str:
    """Quote ``text`` as a Hydra override value, so ``=``, ``,`` and brackets in paths stay literal.

    Example
    -------
    >>> hydra_quoted("out/lr=0.1,seed=1")
    "'out/lr=0.1,seed=1'"
    """
    escaped = text.replace("'", "\\'")
    return f"'{escaped}'"


def _put_on_sys_path(folder: pathlib.Path) -> None:
    text = str(folder)
    if text not in sys.path:
        sys.path.insert(0, text)


def _build_hydra_values(config: Any, recipe_path: pathlib.Path) -> dict[str, Any]:
    from recoverkit.config.objects import ObjectBuilder
    from recoverkit.config.origin import ConfigOrigin

    builder = ObjectBuilder(config, ConfigOrigin(str(recipe_path)))
    values: dict[str, Any] = {}
    # The model first, so its initial weights depend on the seed alone.
    for key in ["model", *(str(key) for key in config if str(key) != "model")]:
        if key == "checkpointer" or key not in config:
            continue
        values[key] = builder.get(key)
    return values


def _build_task(values: Mapping[str, Any], recipe_path: pathlib.Path) -> TrainingTask:
    def require(key: str) -> Any:
        value = values.get(key)
        if value is None:
            raise RecipeError(f"Recipe {recipe_path} has no {key!r} key; the runner needs it. {_KEY_HELP[key]}")
        return value

    model = require("model")
    if not isinstance(model, torch.nn.Module):
        raise RecipeError(f"Recipe {recipe_path}: 'model' must build a torch.nn.Module, got {type(model).__name__}.")
    optimizer = _build_optimizer(require("optimizer"), model, recipe_path)
    lr_scheduler = _build_scheduler(values.get("lr_scheduler"), optimizer)
    data = _as_mapping(require("data"), "data", recipe_path)
    if data.get("train") is None:
        raise RecipeError(f"Recipe {recipe_path} has no 'data.train' dataset. {_KEY_HELP['data']}")
    trainer = _as_mapping(values.get("trainer") or {}, "trainer", recipe_path)
    if trainer.get("threads") is not None:
        torch.set_num_threads(int(trainer["threads"]))
    options = {key: trainer[key] for key in _TRAINER_OPTIONS if trainer.get(key) is not None}
    if "log_every_n_batches" in options:
        options["log_every_n_batches"] = _as_int(
            options["log_every_n_batches"], "trainer.log_every_n_batches", recipe_path, default=50, minimum=1
        )
    # Built outside the try below: their errors already name the recipe and the key.
    loss = _as_callable(require("loss"), "loss", recipe_path)
    metrics = {
        str(name): _as_callable(metric, f"metrics.{name}", recipe_path)
        for name, metric in _as_mapping(values.get("metrics") or {}, "metrics", recipe_path).items()
    }
    epochs = _epoch_counter(values, recipe_path)
    batch_size = _as_int(data.get("batch_size"), "data.batch_size", recipe_path, default=32, minimum=1)
    eval_batch_size = data.get("eval_batch_size")
    if eval_batch_size is not None:
        eval_batch_size = _as_int(eval_batch_size, "data.eval_batch_size", recipe_path, default=None, minimum=1)
    num_workers = _as_int(data.get("num_workers"), "data.num_workers", recipe_path, default=0, minimum=0)
    seed = _as_int(values.get("seed"), "seed", recipe_path, default=0)
    try:
        task = TrainingTask(
            model=model,
            optimizer=optimizer,
            loss=loss,
            train_data=data["train"],
            valid_data=data.get("valid"),
            test_data=data.get("test"),
            epochs=epochs,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
            metrics=metrics,
            lr_scheduler=lr_scheduler,
            grad_scaler=values.get("grad_scaler"),
            average=_as_mapping(values["average"], "average", recipe_path) if values.get("average") else None,
            **options,
        )
    except (TypeError, ValueError) as error:
        raise RecipeError(f"Recipe {recipe_path}: {error}") from error
    _check_monitor(task, "monitor" in options, recipe_path)
    return task


def monitored_names(task: TrainingTask) -> list[str]:
    """Return the metric names each epoch records, which ``trainer.monitor`` may name."""
    names = ["train_loss"]
    if task.valid_data is not None:
        names += ["valid_loss", *(f"valid_{name}" for name in task.metrics)]
    return names


def _check_monitor(task: TrainingTask, monitor_is_set: bool, recipe_path: pathlib.Path) -> None:
    """Reject a ``trainer.monitor`` that no epoch records, before any training.

    The default ``valid_loss`` is only checked when ``average.select`` is
    ``best``, which ranks checkpoints by it, so a recipe without validation
    data and without a monitor still runs.
    """
    selects_best = task.average is not None and task.average.select == "best"
    if not (monitor_is_set or selects_best):
        return
    accepted = monitored_names(task)
    if task.monitor in accepted:
        return
    reason = " (average.select: best ranks checkpoints by it)" if selects_best else ""
    raise RecipeError(
        f"Recipe {recipe_path}: trainer.monitor is {task.monitor!r}, which no epoch records{reason}. "
        f"Set it to one of: {', '.join(accepted)}. Validation metrics are valid_loss and "
        "valid_<name> for each entry of 'metrics', and exist only with data.valid."
    )


_KEY_HELP = {
    "model": "Declare the network, e.g. model: {_target_: mypackage.MyNet}.",
    "optimizer": "Declare it with _partial_: true (Hydra) or !name: (HyperPyYAML); the runner passes the parameters.",
    "loss": "Declare a callable loss(outputs, targets), e.g. loss: {_target_: torch.nn.CrossEntropyLoss}.",
    "data": "Declare data: {train: <dataset>, valid: <dataset>, test: <dataset>, batch_size: N}.",
}


def _build_optimizer(value: Any, model: torch.nn.Module, recipe_path: pathlib.Path) -> torch.optim.Optimizer:
    if isinstance(value, torch.optim.Optimizer):
        return value
    if callable(value):
        return value(model.parameters())
    raise RecipeError(
        f"Recipe {recipe_path}: 'optimizer' must build an optimizer or a callable taking the "
        f"model's parameters, got {type(value).__name__}. {_KEY_HELP['optimizer']}"
    )


def _build_scheduler(value: Any, optimizer: torch.optim.Optimizer) -> Any:
    if value is None or hasattr(value, "state_dict"):
        return value
    return value(optimizer)


def _epoch_counter(values: Mapping[str, Any], recipe_path: pathlib.Path) -> EpochCounter:
    """Return an epoch counter from ``epochs``; one declared among the recoverables replaces it later."""
    epochs = values.get("epochs")
    if isinstance(epochs, EpochCounter):
        return epochs
    if epochs is None:
        # Replaced by the checkpointer's epoch counter in _recipe, or rejected there.
        return EpochCounter(0)
    return EpochCounter(_as_int(epochs, "epochs", recipe_path, default=None, minimum=1))


def _as_int(value: Any, key: str, recipe_path: pathlib.Path, default: Any, minimum: int | None = None) -> Any:
    """Return ``value`` as an int (``default`` if None), or raise a RecipeError naming the recipe and ``key``."""
    if value is None:
        return default
    accepted = "an integer" if minimum is None else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RecipeError(f"Recipe {recipe_path}: {key} is {value!r}, not an integer. Accepted: {accepted}.")
    if minimum is not None and value < minimum:
        raise RecipeError(f"Recipe {recipe_path}: {key} is {value}. Accepted: {accepted}.")
    return int(value)


def _as_mapping(value: Any, key: str, recipe_path: pathlib.Path) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise RecipeError(f"Recipe {recipe_path}: {key!r} must be a mapping, got {type(value).__name__}.")


def _as_callable(value: Any, key: str, recipe_path: pathlib.Path) -> Callable[..., Any]:
    if isinstance(value, str):
        from recoverkit.config.origin import ConfigOrigin

        value = import_by_path(value, ConfigOrigin(str(recipe_path)), key)
    if not callable(value):
        raise RecipeError(f"Recipe {recipe_path}: {key!r} must be callable, got {type(value).__name__}.")
    return value
