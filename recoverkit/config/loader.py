"""The entry point of the config layer: YAML in, a ready Checkpointer out."""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from recoverkit.checkpointer import Checkpointer
from recoverkit.config.hydra_frontend import compose_config, read_section, search_dirs_for
from recoverkit.config.hyperpyyaml_frontend import is_hyperpyyaml, load_hyperpyyaml_file
from recoverkit.config.keymaps import make_keymap_load_hook, plan_keymaps
from recoverkit.config.objects import ObjectBuilder
from recoverkit.config.origin import SECTION, ConfigOrigin
from recoverkit.config.schedule import SaveSchedule
from recoverkit.config.section import LiveObjects, RecoverablePlan, SectionPlan, plan_section
from recoverkit.config.transfer import TransferSpec, apply_transfer, plan_transfers
from recoverkit.errors import ConfigError
from recoverkit.hooks.registry import DEFAULT_LOAD_HOOKS, DEFAULT_SAVE_HOOKS, get_default_hook, has_state_dict_protocol
from recoverkit.recoverables import EpochCounter, RNGState
from recoverkit.retention.policies import RetentionPolicy

__all__ = ["LoadedCheckpointer", "apply_transfers", "load_checkpointer"]

logger = logging.getLogger(__name__)

_PLAIN_TYPES = (str, int, float, bool, type(None), list, dict, tuple)


@dataclass
class LoadedCheckpointer:
    """A Checkpointer built from a config, with the objects and policies the config declared.

    Attributes
    ----------
    checkpointer : Checkpointer
        Ready to save and recover; keymapped recoverables have load hooks
        that apply their keymap.
    objects : dict
        Every object the config built (and every object passed in
        ``objects=``), by top-level key.
    retention : RetentionPolicy
        Which checkpoints to keep; see :meth:`save_and_keep_only`.
    schedule : SaveSchedule
        When to save.
    transfers : list of TransferSpec
        Parameters to load before training; see :meth:`apply_transfers`.
    config : DictConfig or dict
        The resolved config: a DictConfig for Hydra sources, the loaded dict
        for HyperPyYAML files.
    source : str
        The config file, or ``<dict>`` / ``<DictConfig>``.
    load_hooks : dict
        The ``load_hook`` entries of the config by recoverable name; transfers
        use them before any default hook.
    """

    checkpointer: Checkpointer
    objects: dict[str, Any]
    retention: RetentionPolicy
    schedule: SaveSchedule
    transfers: list[TransferSpec] = field(default_factory=list)
    config: Any = None
    source: str = ""
    load_hooks: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False)

    @property
    def recoverables(self) -> dict[str, Any]:
        """The Checkpointer's recoverables by name, built-ins included."""
        return self.checkpointer.recoverables

    @property
    def epoch_counter(self) -> EpochCounter | None:
        """The first EpochCounter among the recoverables, or None."""
        return next((obj for obj in self.recoverables.values() if isinstance(obj, EpochCounter)), None)

    def save_and_keep_only(
        self,
        meta: Mapping[str, Any] | None = None,
        end_of_epoch: bool = True,
        name: str | None = None,
        verbosity: int = logging.INFO,
    ) -> None:
        """Save a checkpoint, then delete the ones the retention policy does not keep."""
        self.checkpointer.save_and_keep_only(
            meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=verbosity,
            **self.retention.save_and_keep_only_kwargs(),
        )

    def apply_transfers(self) -> None:
        """Load the parameters of every transfer source into its recoverables, in order.

        Call it before :meth:`Checkpointer.recover_if_possible`, which
        overwrites transferred values when a checkpoint exists.
        """
        for spec in self.transfers:
            apply_transfer(spec, self.checkpointer, self.load_hooks)


def apply_transfers(loaded: LoadedCheckpointer) -> None:
    """Load every transfer source of ``loaded`` into its recoverables (see :meth:`LoadedCheckpointer.apply_transfers`)."""
    loaded.apply_transfers()


def load_checkpointer(
    source: str | os.PathLike | DictConfig | Mapping[str, Any],
    overrides: Sequence[str] | Mapping[str, Any] | str = (),
    objects: Mapping[str, Any] | None = None,
    *,
    transfer: bool = False,
    source_name: str | None = None,
) -> LoadedCheckpointer:
    """Build a Checkpointer, and the objects it saves, from a config.

    Every check runs before the checkpoints folder is created or any
    object is built by a Hydra config, so a bad config fails without side
    effects. (A HyperPyYAML file builds its objects while it is read.)

    Parameters
    ----------
    source : path, DictConfig or dict
        A Hydra/OmegaConf YAML file, a HyperPyYAML file, a DictConfig or a
        dict. A file is read as HyperPyYAML if its name ends in ``.hpy.yaml``
        or ``.hparams.yaml``, or if it uses a HyperPyYAML tag (``!new:``,
        ``!ref``, ``!name:`` ...). Any other file is composed with Hydra.
    overrides : sequence of str, dict or str
        For Hydra files: overrides such as ``retention=best_valid_loss`` or
        ``retention.num_to_keep=3``. For a DictConfig or dict: ``key=value``
        strings, merged in without group switching. For HyperPyYAML files:
        a dict or YAML string as ``load_hyperpyyaml`` takes, or
        ``key=value`` strings.
    objects : mapping, optional
        Objects built by the caller, by name. Recoverables can refer to them
        like to config keys, and a config key with the same name is not
        built (Hydra) or is replaced in ``objects`` (HyperPyYAML).
    transfer : bool
        If True, apply the ``transfer`` section before returning.
    source_name : str, optional
        The file that a DictConfig or dict ``source`` was read from, named
        in error messages instead of ``<DictConfig>`` or ``<dict>``.

    Returns
    -------
    LoadedCheckpointer

    Raises
    ------
    ConfigError
        For an unknown key, a wrong type, a hook path that does not import,
        a recoverable that refers to nothing, a retention policy that would
        delete every checkpoint, a non-positive interval and every other
        unusable value. The message names the file and the key path.
    """
    if isinstance(source, (DictConfig, Mapping)):
        label = source_name or ("<DictConfig>" if isinstance(source, DictConfig) else "<dict>")
        config = source if isinstance(source, DictConfig) else _create_config(source, label)
        origin = ConfigOrigin(label, search_dirs=search_dirs_for(None))
        loaded = _load_hydra(_with_dotlist(config, overrides, label), origin, objects)
    elif isinstance(source, (str, os.PathLike)):
        loaded = _load_file(pathlib.Path(source), overrides, objects)
    else:
        raise ConfigError(
            f"Invalid config source {source!r}: expected a YAML file path, a DictConfig or a dict.",
            source=repr(source),
        )
    if transfer:
        loaded.apply_transfers()
    return loaded


def _load_file(path: pathlib.Path, overrides: Any, objects: Mapping[str, Any] | None) -> LoadedCheckpointer:
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"Invalid config {label}: cannot read the file ({error.strerror or error}).", source=label) from None
    origin = ConfigOrigin(label, base_dir=path.resolve().parent, search_dirs=search_dirs_for(path.resolve().parent))
    if is_hyperpyyaml(path, text):
        return _load_hyperpyyaml(path, text, overrides, objects, origin)
    if isinstance(overrides, (str, Mapping)):
        raise ConfigError(
            f"Invalid overrides for {label}: a Hydra config takes a list of key=value strings, "
            f"got {type(overrides).__name__}.",
            source=label,
        )
    config = compose_config(path, list(overrides))
    return _load_hydra(config, origin, objects)


def _create_config(source: Mapping[str, Any], label: str) -> DictConfig:
    try:
        return OmegaConf.create(dict(source))
    except OmegaConfBaseException as error:
        raise ConfigError(
            f"Invalid config {label}: it cannot be turned into an OmegaConf config: "
            f"{str(error).strip().splitlines()[0]}. Pass plain values (numbers, strings, "
            "lists, dicts); pass built objects in objects= instead.",
            source=label,
        ) from None


def _with_dotlist(config: DictConfig, overrides: Any, label: str) -> DictConfig:
    if not overrides:
        return config
    if isinstance(overrides, (str, Mapping)):
        raise ConfigError(f"Invalid overrides for {label}: expected a list of key=value strings.", source=label)
    try:
        merged = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as error:
        raise ConfigError(
            f"Invalid overrides {list(overrides)} for {label}: {str(error).strip().splitlines()[0]}. "
            "Accepted: key=value strings for keys of the config.",
            source=label,
        ) from None
    assert isinstance(merged, DictConfig)
    return merged


def _load_hydra(config: DictConfig, origin: ConfigOrigin, supplied: Mapping[str, Any] | None) -> LoadedCheckpointer:
    builder = ObjectBuilder(config, origin, supplied)
    if builder.is_object_path(SECTION):
        return _load_hydra_instantiated(config, origin, builder)
    live = LiveObjects(builder.is_object_path)
    plan = plan_section(read_section(config, origin), origin, live)
    keymaps = plan_keymaps(plan.config, origin)
    transfers = plan_transfers(plan.config, origin)
    built = builder.build_top_level()
    checkpointer = _build_checkpointer(plan, builder.get, keymaps, origin)
    return LoadedCheckpointer(
        checkpointer, built, plan.retention, plan.schedule, transfers, config, origin.label, _declared_load_hooks(plan)
    )


def _load_hydra_instantiated(config: DictConfig, origin: ConfigOrigin, builder: ObjectBuilder) -> LoadedCheckpointer:
    """Load a config whose ``checkpointer`` is a ``_target_`` node, like a SpeechBrain ``!new:``."""
    built = builder.build_top_level()
    checkpointer = built[SECTION]
    if not isinstance(checkpointer, Checkpointer):
        cls = type(checkpointer)
        raise origin.error(
            f"{SECTION}._target_",
            f"it builds a {cls.__module__}.{cls.__qualname__}, not a Checkpointer.",
            "_target_: recoverkit.Checkpointer, or a checkpointer mapping in the recoverkit schema.",
        )
    return LoadedCheckpointer(checkpointer, built, RetentionPolicy(), SaveSchedule(), [], config, origin.label)


def _load_hyperpyyaml(
    path: pathlib.Path, text: str, overrides: Any, supplied: Mapping[str, Any] | None, origin: ConfigOrigin
) -> LoadedCheckpointer:
    loaded = load_hyperpyyaml_file(path, text, overrides, origin)
    built = {key: value for key, value in loaded.items() if not isinstance(value, _PLAIN_TYPES)}
    built.update(supplied or {})

    section = loaded.get(SECTION)
    if isinstance(section, Checkpointer):
        # SpeechBrain style: the file built the Checkpointer itself with !new:.
        return LoadedCheckpointer(section, built, RetentionPolicy(), SaveSchedule(), [], loaded, origin.label)
    if section is None:
        raise origin.error(
            SECTION,
            "the section is missing.",
            "checkpointer: !new:recoverkit.Checkpointer with checkpoints_dir and recoverables, "
            "or a checkpointer mapping in the recoverkit schema.",
        )
    if not isinstance(section, Mapping):
        cls = type(section)
        raise origin.error(
            SECTION,
            f"got an object of type {cls.__module__}.{cls.__qualname__}.",
            "!new:recoverkit.Checkpointer, or a mapping in the recoverkit schema.",
        )

    names = dict(loaded)
    names.update(supplied or {})
    live = LiveObjects(lambda name: name in names and name != SECTION)
    plan = plan_section(section, origin, live)
    keymaps = plan_keymaps(plan.config, origin)
    transfers = plan_transfers(plan.config, origin)
    checkpointer = _build_checkpointer(plan, names.__getitem__, keymaps, origin)
    return LoadedCheckpointer(
        checkpointer, built, plan.retention, plan.schedule, transfers, loaded, origin.label, _declared_load_hooks(plan)
    )


def _declared_load_hooks(plan: SectionPlan) -> dict[str, Callable[..., Any]]:
    return {item.name: item.load_hook for item in plan.recoverables if item.load_hook is not None}


def _build_checkpointer(
    plan: SectionPlan,
    get_object: Callable[[str], Any],
    keymaps: Mapping[str, tuple[Any, bool]],
    origin: ConfigOrigin,
) -> Checkpointer:
    """Build the recoverables, check their hooks, then create the Checkpointer (and its folder)."""
    recoverables = {item.name: _recoverable_object(item, get_object) for item in plan.recoverables}
    load_hooks = {item.name: item.load_hook for item in plan.recoverables if item.load_hook is not None}
    save_hooks = {item.name: item.save_hook for item in plan.recoverables if item.save_hook is not None}
    for name, (keymap, strict) in keymaps.items():
        load_hooks[name] = make_keymap_load_hook(keymap, strict)
    for item in plan.recoverables:
        _check_hooks(item.name, recoverables[item.name], item.name in save_hooks, item.name in load_hooks, origin)
    checkpointer = Checkpointer(
        plan.config.checkpoints_dir,
        allow_partial_load=plan.config.allow_partial_load,
        async_save=plan.config.async_save,
        mmap=plan.config.mmap,
    )
    for item in plan.recoverables:
        checkpointer.add_recoverable(
            item.name,
            recoverables[item.name],
            custom_load_hook=load_hooks.get(item.name),
            custom_save_hook=save_hooks.get(item.name),
            optional_load=item.optional_load,
        )
    logger.debug("Built %r from %s", checkpointer, origin.label)
    return checkpointer


def _recoverable_object(item: RecoverablePlan, get_object: Callable[[str], Any]) -> Any:
    if item.sharded:
        from recoverkit.hooks.sharded import ShardedState

        model = item.inline if item.has_inline else get_object(item.ref)
        return ShardedState(model, [get_object(name) for name in item.optimizer_refs])
    if item.has_inline:
        return item.inline
    if item.builtin == "rng":
        return RNGState()
    if item.builtin == "epoch_counter":
        assert item.limit is not None
        return EpochCounter(item.limit)
    assert item.ref is not None
    return get_object(item.ref)


def _check_hooks(name: str, obj: Any, has_save_hook: bool, has_load_hook: bool, origin: ConfigOrigin) -> None:
    protocol = has_state_dict_protocol(obj)
    missing = []
    if not has_save_hook and get_default_hook(obj, DEFAULT_SAVE_HOOKS) is None and not protocol:
        missing.append("save")
    if not has_load_hook and get_default_hook(obj, DEFAULT_LOAD_HOOKS) is None and not protocol:
        missing.append("load")
    if missing:
        cls = type(obj)
        hint = " It is a partial (_partial_: true or !name:); build the object itself." if cls.__name__ == "partial" else ""
        raise origin.error(
            f"{SECTION}.recoverables.{name}",
            f"the object, of type {cls.__module__}.{cls.__qualname__}, has no "
            f"{' or '.join(missing)} hook.{hint}",
            "objects with state_dict()/load_state_dict(), classes with registered hooks, "
            "or save_hook and load_hook import paths.",
        )
