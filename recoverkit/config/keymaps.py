"""Routing the ``keymaps`` section of a config to the load path of its recoverables.

Each recoverable named under ``checkpointer.keymaps`` gets a custom load
hook that reads the state dict, maps it through the keymap (after a dry run
that checks it against the recoverable) and then loads it. The keymap module
is imported only when a config declares a keymap.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from recoverkit.config.origin import SECTION, ConfigOrigin
from recoverkit.config.schema import CheckpointerConfig
from recoverkit.errors import KeymapError

__all__ = ["KEYMAP_GROUP", "plan_keymaps", "resolve_config_keymap"]

#: The Hydra config group whose files are keymaps.
KEYMAP_GROUP = "keymap"

KEYMAP_FORMS = (
    "a built-in keymap name (ddp, compile), the name of a file in a keymap/ config group, "
    "a keymap file path, a mapping with 'rules', a single rule such as "
    "{prefix: {from: 'module.', to: ''}}, or a list of these; under checkpointer.keymaps "
    "also {keymap: <one of these>, strict: false}."
)


def plan_keymaps(config: CheckpointerConfig, origin: ConfigOrigin) -> dict[str, tuple[Any, bool]]:
    """Resolve every entry of ``checkpointer.keymaps`` to a Keymap and its strictness, by recoverable name.

    An entry is a keymap, or ``{keymap: <keymap>, strict: false}`` to log
    unused and missing keys as warnings instead of raising.

    Raises
    ------
    ConfigError
        If an entry names no recoverable, the recoverable also has a
        ``load_hook``, or the keymap is invalid.
    """
    keymaps = {}
    for name, value in config.keymaps.items():
        key_path = f"{SECTION}.keymaps.{name}"
        if name not in config.recoverables:
            raise origin.error(key_path, f"{name!r} is not a recoverable of this checkpointer.",
                               f"one of {sorted(config.recoverables)}.")
        if config.recoverables[name].load_hook is not None:
            raise origin.error(
                key_path,
                f"recoverable {name!r} has both a load_hook and a keymap, but only one can load it.",
                "a keymap, or a load_hook that applies the key mapping itself.",
            )
        value, strict = _split_strict(value, key_path, origin)
        keymaps[name] = (resolve_config_keymap(value, key_path, origin), strict)
    return keymaps


def _split_strict(value: Any, key_path: str, origin: ConfigOrigin) -> tuple[Any, bool]:
    """Split the form ``{keymap: ..., strict: false}`` into the keymap and its strictness."""
    if not isinstance(value, Mapping) or "keymap" not in value:
        return value, True
    unknown = sorted(set(value) - {"keymap", "strict"})
    if unknown:
        raise origin.error(f"{key_path}.{unknown[0]}", f"unknown key {unknown[0]!r}.", "keymap, strict.")
    strict = value.get("strict", True)
    if not isinstance(strict, bool):
        raise origin.error(f"{key_path}.strict", f"got {strict!r} of type {type(strict).__name__}.",
                           "true or false.")
    return value["keymap"], strict


def resolve_config_keymap(value: Any, key_path: str, origin: ConfigOrigin) -> Any:
    """Return the Keymap that ``value`` names, with paths resolved as configs resolve them.

    A relative file path is tried from the current folder, then from the
    config file's folder. A bare name that is not built in is looked up as
    ``keymap/<name>.yaml`` in the config roots.
    """
    from recoverkit.state_dict.keymap import resolve_keymap

    located = _locate_files(value, origin)
    try:
        return resolve_keymap(located)
    except KeymapError as error:
        raise origin.error(key_path, f"{error}", KEYMAP_FORMS) from None


def _locate_files(value: Any, origin: ConfigOrigin) -> Any:
    if isinstance(value, str):
        return _locate_file(value, origin)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_locate_files(item, origin) for item in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _locate_file(text: str, origin: ConfigOrigin) -> str:
    from recoverkit.state_dict.keymap import BUILTIN_KEYMAPS

    if text in BUILTIN_KEYMAPS:
        return text
    path = pathlib.Path(text).expanduser()
    candidates = [path] if path.is_absolute() else [path, origin.base_dir / path]
    if not path.suffix and len(path.parts) == 1:
        candidates += [root / KEYMAP_GROUP / f"{text}.yaml" for root in origin.search_dirs]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    return text  # resolve_keymap reports it as neither built in nor a file.


def make_keymap_load_hook(keymap: Any, strict: bool) -> Any:
    """Return a load hook that maps each loaded state dict through ``keymap``."""
    from recoverkit.state_dict.keymap import keymap_load_hook

    return keymap_load_hook(keymap, strict=strict)


def load_with_keymap(obj: Any, state_dict: Mapping[str, Any], keymap: Any, strict: bool, origin: str) -> None:
    """Map ``state_dict`` through ``keymap`` (checked against ``obj`` first) and load it into ``obj``."""
    from recoverkit.state_dict.keymap import load_state_dict_with_keymap

    load_state_dict_with_keymap(obj, state_dict, keymap, strict=strict, origin=origin)
