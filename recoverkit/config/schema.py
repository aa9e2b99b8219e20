"""The checkpointing schema: structured configs for the ``checkpointer:`` section.

Each dataclass is registered in Hydra's ConfigStore (group ``schema``), and
every config, from Hydra or HyperPyYAML, is merged into them before anything
is built, so a misspelled key or a value of the wrong type fails at load time.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

__all__ = [
    "BUILTIN_RECOVERABLES",
    "CheckpointerConfig",
    "RecoverableConfig",
    "RetentionConfig",
    "ScheduleConfig",
    "TransferConfig",
    "describe_field",
    "find_container_mismatch",
    "register_schema",
]

#: Short names of the recoverables that the config layer creates itself.
BUILTIN_RECOVERABLES = ("rng", "epoch_counter")

# The annotations below use typing.Optional/List/Dict because OmegaConf 2.3
# reads them at run time and does not accept the ``X | None`` form everywhere.


@dataclass
class RecoverableConfig:
    """One entry of ``checkpointer.recoverables``.

    Exactly one of ``ref`` (the name of an object built elsewhere in the
    config, or passed in by the caller) and ``builtin`` (``rng`` or
    ``epoch_counter``) is set. Hooks are import paths
    ``package.module:function``.
    """

    ref: Optional[str] = None
    builtin: Optional[str] = None
    limit: Optional[int] = None
    optional_load: bool = False
    save_hook: Optional[str] = None
    load_hook: Optional[str] = None
    # With sharded: true, ``ref`` names a model that every rank saves through
    # torch.distributed.checkpoint, together with the ``optimizers`` it names.
    sharded: bool = False
    optimizers: List[str] = field(default_factory=list)


@dataclass
class RetentionConfig:
    """The ``retention`` section: which checkpoints survive after each save."""

    num_to_keep: int = 1
    keep_recent: bool = True
    min_keys: List[str] = field(default_factory=list)
    max_keys: List[str] = field(default_factory=list)
    importance_keys: List[str] = field(default_factory=list)
    ckpt_predicate: Optional[str] = None
    keep_every_n_epochs: Optional[int] = None


@dataclass
class ScheduleConfig:
    """The ``schedule`` section: when a run saves a checkpoint.

    Each interval is a positive number or null (never). ``on_signals`` lists
    signal names such as ``SIGTERM``.
    """

    every_n_epochs: Optional[int] = 1
    every_n_steps: Optional[int] = None
    every_n_minutes: Optional[float] = None
    on_signals: List[str] = field(default_factory=list)


@dataclass
class TransferConfig:
    """One entry of the ``transfer`` list: parameters to load before training."""

    source: str = MISSING
    recoverables: List[str] = MISSING
    keymap: Optional[Any] = None
    strict: bool = True


@dataclass
class CheckpointerConfig:
    """The ``checkpointer:`` section of a config."""

    checkpoints_dir: str = MISSING
    allow_partial_load: bool = False
    async_save: bool = False
    mmap: bool = False
    recoverables: Dict[str, RecoverableConfig] = field(default_factory=dict)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    keymaps: Dict[str, Any] = field(default_factory=dict)
    transfer: List[TransferConfig] = field(default_factory=list)


def register_schema(store: ConfigStore | None = None) -> None:
    """Register the schema dataclasses in Hydra's ConfigStore under group ``schema``.

    A Hydra config can then validate a group against them with a defaults
    entry such as ``- /schema/checkpointer@checkpointer``.
    """
    store = store if store is not None else ConfigStore.instance()
    store.store(group="schema", name="checkpointer", node=CheckpointerConfig)
    store.store(group="schema", name="retention", node=RetentionConfig)
    store.store(group="schema", name="schedule", node=ScheduleConfig)


def describe_field(key_path: str) -> tuple[str, list[str]]:
    """Describe the type expected at ``key_path`` (relative to ``checkpointer``).

    Returns
    -------
    (expected, accepted_keys)
        ``expected`` reads like "an integer or null"; ``accepted_keys`` lists
        the keys of the section that contains ``key_path`` (empty when that
        section is not a dataclass).
    """
    annotation: Any = CheckpointerConfig
    section: Any = None
    for part in [part for part in key_path.split(".") if part]:
        section = annotation
        annotation = _child_annotation(annotation, part)
        if annotation is None:
            break
    accepted = _field_names(section) if section is not None else []
    return _describe_annotation(annotation), accepted


def find_container_mismatch(data: Any, annotation: Any = CheckpointerConfig, path: str = "") -> tuple[str, str, Any] | None:
    """Find the first place where ``data`` has a scalar for a container or the other way round.

    OmegaConf reports such a mismatch without the key path, so this walk
    runs before the merge. Returns ``(key_path, expected, value)`` or None.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        non_none = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if data is None or len(non_none) != 1:
            return None
        annotation = non_none[0]
        origin = typing.get_origin(annotation)
    if data is None or _is_interpolation(data):
        return None
    if dataclasses.is_dataclass(annotation) or origin is dict:
        if not isinstance(data, Mapping):
            return path, _describe_annotation(annotation), data
        for key, value in data.items():
            child = _child_annotation(annotation, str(key))
            if child is not None:
                found = find_container_mismatch(value, child, f"{path}.{key}" if path else str(key))
                if found:
                    return found
        return None
    if origin is list:
        if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Sequence):
            return path, _describe_annotation(annotation), data
        item_type = typing.get_args(annotation)[0]
        for index, value in enumerate(data):
            found = find_container_mismatch(value, item_type, f"{path}.{index}")
            if found:
                return found
        return None
    if isinstance(data, (Mapping, list, tuple)) and annotation is not Any:
        return path, _describe_annotation(annotation), data
    return None


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${")


def _child_annotation(annotation: Any, part: str) -> Any:
    if dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        return hints.get(part)
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        non_none = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _child_annotation(non_none[0], part) if len(non_none) == 1 else None
    if origin in (dict, list):
        return typing.get_args(annotation)[-1]
    return None


def _field_names(annotation: Any) -> list[str]:
    if dataclasses.is_dataclass(annotation):
        return [item.name for item in dataclasses.fields(annotation)]
    return []


_TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
}


def _describe_annotation(annotation: Any) -> str:
    if annotation is None or annotation is Any:
        return "a value"
    if annotation in _TYPE_WORDS:
        return _TYPE_WORDS[annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        non_none = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return " or ".join(_describe_annotation(arg) for arg in non_none) + " or null"
    if origin is list:
        return f"a list of {_plural(typing.get_args(annotation)[0])}"
    if origin is dict:
        return f"a mapping from names to {_plural(typing.get_args(annotation)[1])}"
    if dataclasses.is_dataclass(annotation):
        return f"a mapping with keys {', '.join(_field_names(annotation))}"
    return f"a {getattr(annotation, '__name__', annotation)}"


def _plural(annotation: Any) -> str:
    words = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
    if annotation in words:
        return words[annotation]
    if dataclasses.is_dataclass(annotation):
        return f"mappings with keys {', '.join(_field_names(annotation))}"
    return "values"


register_schema()
