"""Validating the ``checkpointer:`` section and turning it into a build plan.

Both front-ends hand this module the section as plain data plus a way to
look up objects by name. Objects that a HyperPyYAML file put straight into
the section (``!ref <model>``, ``!name:mod.func``) are swapped for
placeholder strings first, so the section can be validated against the
structured schema like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from recoverkit.config.imports import import_by_path
from recoverkit.config.origin import SECTION, ConfigOrigin
from recoverkit.config.schedule import SaveSchedule
from recoverkit.config.schema import (
    BUILTIN_RECOVERABLES,
    CheckpointerConfig,
    RecoverableConfig,
    find_container_mismatch,
)
from recoverkit.errors import InvalidRetentionPolicyError
from recoverkit.retention.policies import IMPORTANCE_KEYS, RetentionPolicy

__all__ = ["LiveObjects", "RecoverablePlan", "SectionPlan", "plan_section"]

#: A Hydra interpolation of another key, such as ``${model}`` or ``${models.encoder}``.
INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*\}")

_PLAIN_TYPES = (str, int, float, bool, type(None))

RECOVERABLE_FORMS = (
    "${name} (Hydra) or {ref: name} for an object built elsewhere in the config or passed "
    "in objects=, !ref <name> in HyperPyYAML, the short name 'rng', or a mapping "
    "{builtin: epoch_counter, limit: N}; mappings may add optional_load, save_hook and load_hook, "
    "or sharded: true and optimizers for a model saved shard by shard on every rank."
)


class LiveObjects:
    """Objects that the section refers to: by name, and by placeholder for inline objects."""

    def __init__(self, names: Callable[[str], bool]) -> None:
        self._has_name = names
        self._inline: dict[str, Any] = {}

    def placeholder(self, obj: Any) -> str:
        """Store ``obj`` and return the placeholder string that stands for it."""
        cls = type(obj)
        text = f"<object #{len(self._inline)}: {cls.__module__}.{cls.__qualname__}>"
        self._inline[text] = obj
        return text

    def is_placeholder(self, value: Any) -> bool:
        return isinstance(value, str) and value in self._inline

    def inline(self, placeholder: str) -> Any:
        return self._inline[placeholder]

    def has_name(self, name: str) -> bool:
        return self._has_name(name)


@dataclass
class RecoverablePlan:
    """The registration of one recoverable: the source of its object, and its hooks."""

    name: str
    ref: str | None = None
    inline: Any = None
    has_inline: bool = False
    builtin: str | None = None
    limit: int | None = None
    optional_load: bool = False
    save_hook: Callable[..., Any] | None = None
    load_hook: Callable[..., Any] | None = None
    sharded: bool = False
    optimizer_refs: list[str] = field(default_factory=list)


@dataclass
class SectionPlan:
    """The validated section: everything needed to build, with nothing built yet."""

    config: CheckpointerConfig
    recoverables: list[RecoverablePlan] = field(default_factory=list)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    schedule: SaveSchedule = field(default_factory=SaveSchedule)


def plan_section(raw: Any, origin: ConfigOrigin, live: LiveObjects) -> SectionPlan:
    """Validate the ``checkpointer`` section and resolve its names, without building anything.

    Parameters
    ----------
    raw : mapping
        The section as plain data. Hydra interpolations of recoverables
        (``${model}``) must still be unresolved strings; other values may
        be live objects (HyperPyYAML).
    origin : ConfigOrigin
        Names the file in error messages.
    live : LiveObjects
        Looks up objects by name.

    Raises
    ------
    ConfigError
        On the first problem found.
    """
    if not isinstance(raw, Mapping):
        raise origin.error(
            SECTION,
            f"got {type(raw).__name__}, not a mapping.",
            "a mapping with keys checkpoints_dir, recoverables, retention, schedule, keymaps, transfer.",
        )
    plain = _swap_objects(dict(raw), live)
    plain["recoverables"], bare = _normalize_recoverables(plain.get("recoverables"), origin, live)
    config = validate_schema(plain, origin)
    plan = SectionPlan(config=config)
    plan.recoverables = [
        _plan_recoverable(name, entry, origin, live, name in bare) for name, entry in config.recoverables.items()
    ]
    plan.retention = _build_retention(config, origin, live)
    plan.schedule = _build_schedule(config, origin)
    return plan


def validate_schema(plain: Mapping[str, Any], origin: ConfigOrigin) -> CheckpointerConfig:
    """Merge ``plain`` into the structured schema and return the typed section."""
    mismatch = find_container_mismatch(plain)
    if mismatch is not None:
        relative, expected, value = mismatch
        raise origin.error(
            f"{SECTION}.{relative}" if relative else SECTION,
            f"got {value!r} of type {type(value).__name__}.",
            f"{expected}.",
        )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(CheckpointerConfig), plain)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise origin.translate(error) from None
    assert isinstance(config, CheckpointerConfig)
    return config


def _swap_objects(value: Any, live: LiveObjects) -> Any:
    if isinstance(value, Mapping):
        return {key: _swap_objects(item, live) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_swap_objects(item, live) for item in value]
    if isinstance(value, _PLAIN_TYPES):
        return value
    if hasattr(value, "__fspath__"):
        return str(value)
    return live.placeholder(value)


def _normalize_recoverables(value: Any, origin: ConfigOrigin, live: LiveObjects) -> tuple[Any, set[str]]:
    """Bring every recoverable entry to mapping form.

    Returns the entries and the names of those written as a bare
    ``${name}`` interpolation, whose errors name the entry itself rather
    than its ``ref`` key. Interpolations become plain names here because
    OmegaConf would try to resolve them inside the section.
    """
    if value is None:
        return {}, set()
    if not isinstance(value, Mapping):
        return value, set()  # The schema check reports the wrong type.
    normalized: dict[str, Any] = {}
    bare: set[str] = set()
    for name, entry in value.items():
        key_path = f"{SECTION}.recoverables.{name}"
        if isinstance(entry, str):
            normalized[name] = _normalize_recoverable_string(entry, key_path, origin, live)
            if INTERPOLATION.fullmatch(entry.strip()):
                bare.add(str(name))
        elif entry is None:
            raise origin.error(key_path, "the recoverable refers to nothing (null).", RECOVERABLE_FORMS)
        elif isinstance(entry, Mapping):
            normalized[name] = dict(entry)
            ref = entry.get("ref")
            match = INTERPOLATION.fullmatch(ref.strip()) if isinstance(ref, str) else None
            if match:
                normalized[name]["ref"] = match.group(1)
        else:
            normalized[name] = entry
    return normalized, bare


def _normalize_recoverable_string(entry: str, key_path: str, origin: ConfigOrigin, live: LiveObjects) -> dict[str, Any]:
    if live.is_placeholder(entry):
        return {"ref": entry}
    match = INTERPOLATION.fullmatch(entry.strip())
    if match:
        return {"ref": match.group(1)}
    if entry in BUILTIN_RECOVERABLES:
        return {"builtin": entry}
    raise origin.error(key_path, f"got the string {entry!r}.", RECOVERABLE_FORMS)


def _plan_recoverable(
    name: str, entry: RecoverableConfig, origin: ConfigOrigin, live: LiveObjects, bare: bool
) -> RecoverablePlan:
    key_path = f"{SECTION}.recoverables.{name}"
    if (entry.ref is None) == (entry.builtin is None):
        present = "both ref and builtin" if entry.ref is not None else "neither ref nor builtin"
        raise origin.error(key_path, f"the entry has {present}.", RECOVERABLE_FORMS)
    plan = RecoverablePlan(name=name, optional_load=entry.optional_load)
    if entry.ref is not None:
        _plan_reference(plan, entry.ref, key_path if bare else f"{key_path}.ref", origin, live)
    else:
        _plan_builtin(plan, entry, key_path, origin)
    if entry.limit is not None and plan.builtin != "epoch_counter":
        raise origin.error(f"{key_path}.limit", "limit applies only to builtin: epoch_counter.",
                           "limit together with builtin: epoch_counter.")
    plan.save_hook = _resolve_callable(entry.save_hook, f"{key_path}.save_hook", origin, live)
    plan.load_hook = _resolve_callable(entry.load_hook, f"{key_path}.load_hook", origin, live)
    _plan_sharded(plan, entry, key_path, origin, live)
    return plan


def _plan_sharded(plan: RecoverablePlan, entry: RecoverableConfig, key_path: str, origin: ConfigOrigin, live: LiveObjects) -> None:
    if entry.optimizers and not entry.sharded:
        raise origin.error(f"{key_path}.optimizers", "optimizers applies only to sharded: true.",
                           "sharded: true together with optimizers, or no optimizers key.")
    if not entry.sharded:
        return
    if entry.ref is None or entry.save_hook is not None or entry.load_hook is not None:
        raise origin.error(f"{key_path}.sharded", "sharded: true needs a ref to a model and no save_hook or load_hook.",
                           "{ref: model, sharded: true, optimizers: [optimizer]}.")
    plan.sharded = True
    for index, name in enumerate(entry.optimizers):
        if not live.is_placeholder(name) and not live.has_name(name):
            raise origin.error(f"{key_path}.optimizers[{index}]", f"{name!r} is neither a key of the config nor "
                               "an object passed in objects=.", "names of optimizers built in the config.")
        plan.optimizer_refs.append(name)


def _plan_reference(plan: RecoverablePlan, ref: str, key_path: str, origin: ConfigOrigin, live: LiveObjects) -> None:
    if live.is_placeholder(ref):
        plan.inline = live.inline(ref)
        plan.has_inline = True
        return
    name = ref.strip()
    if not live.has_name(name):
        raise origin.error(
            key_path,
            f"the recoverable refers to {name!r}, which is neither a config key that builds "
            "an object nor an object passed in objects=.",
            "the name of a config key that builds an object (has _target_ or !new:), "
            "or of an entry of objects=.",
        )
    plan.ref = name


def _plan_builtin(plan: RecoverablePlan, entry: RecoverableConfig, key_path: str, origin: ConfigOrigin) -> None:
    if entry.builtin not in BUILTIN_RECOVERABLES:
        raise origin.error(f"{key_path}.builtin", f"unknown built-in recoverable {entry.builtin!r}.",
                           f"{', '.join(BUILTIN_RECOVERABLES)}.")
    plan.builtin = entry.builtin
    if entry.builtin == "epoch_counter":
        if entry.limit is None or entry.limit < 0:
            raise origin.error(f"{key_path}.limit", f"epoch_counter needs a limit >= 0, got {entry.limit!r}.",
                               "the number of the last epoch, such as limit: 10.")
        plan.limit = entry.limit


def _resolve_callable(value: str | None, key_path: str, origin: ConfigOrigin, live: LiveObjects) -> Callable[..., Any] | None:
    if value is None:
        return None
    resolved = live.inline(value) if live.is_placeholder(value) else import_by_path(value, origin, key_path)
    if not callable(resolved):
        raise origin.error(key_path, f"{value!r} is not callable.", "the import path of a function.")
    return resolved


def _build_retention(config: CheckpointerConfig, origin: ConfigOrigin, live: LiveObjects) -> RetentionPolicy:
    section = config.retention
    key_path = f"{SECTION}.retention"
    importance_keys = [
        _resolve_importance_key(name, f"{key_path}.importance_keys.{index}", origin, live)
        for index, name in enumerate(section.importance_keys)
    ]
    predicate = _resolve_callable(section.ckpt_predicate, f"{key_path}.ckpt_predicate", origin, live)
    try:
        return RetentionPolicy(
            num_to_keep=section.num_to_keep,
            keep_recent=section.keep_recent,
            importance_keys=tuple(importance_keys),
            max_keys=tuple(section.max_keys),
            min_keys=tuple(section.min_keys),
            ckpt_predicate=predicate,
            keep_every_n_epochs=section.keep_every_n_epochs,
        )
    except InvalidRetentionPolicyError as error:
        raise origin.error(
            f"{key_path}.{error.field}" if error.field else key_path,
            str(error),
        ) from None


def _resolve_importance_key(name: str, key_path: str, origin: ConfigOrigin, live: LiveObjects) -> Callable[..., Any]:
    if name in IMPORTANCE_KEYS:
        return IMPORTANCE_KEYS[name]
    if live.is_placeholder(name) or ":" in name or "." in name:
        function = _resolve_callable(name, key_path, origin, live)
        assert function is not None
        return function
    raise origin.error(
        key_path,
        f"unknown importance key {name!r}.",
        f"a registered short name ({', '.join(sorted(IMPORTANCE_KEYS))}) or an import path "
        "such as 'package.module:function'.",
    )


def _build_schedule(config: CheckpointerConfig, origin: ConfigOrigin) -> SaveSchedule:
    section = config.schedule
    key_path = f"{SECTION}.schedule"
    for name in ("every_n_epochs", "every_n_steps", "every_n_minutes"):
        value = getattr(section, name)
        if value is not None and value <= 0:
            raise origin.error(f"{key_path}.{name}", f"the interval must be positive, got {value!r}.",
                               "a positive number, or null to never save on this trigger.")
    for index, signal_name in enumerate(section.on_signals):
        try:
            SaveSchedule(signals=(signal_name,))
        except ValueError as error:
            raise origin.error(f"{key_path}.on_signals.{index}", str(error), "SIGTERM, SIGINT, SIGUSR1, ...") from None
    return SaveSchedule(
        every_n_epochs=section.every_n_epochs,
        every_n_steps=section.every_n_steps,
        every_n_minutes=section.every_n_minutes,
        signals=tuple(section.on_signals),
    )
