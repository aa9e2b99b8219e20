"""Importing functions and classes named in a config."""

from __future__ import annotations

import importlib
from typing import Any

from recoverkit.config.origin import ConfigOrigin

__all__ = ["import_by_path"]

IMPORT_PATH_FORM = "an import path such as 'package.module:function' or 'package.module.function'"


def import_by_path(path: Any, origin: ConfigOrigin, key_path: str) -> Any:
    """Import the object named by ``path`` (``package.module:attr`` or ``package.module.attr``).

    Raises
    ------
    ConfigError
        If ``path`` is not a string of that form, or the module or attribute
        cannot be imported. The import error's text is part of the message.
    """
    if not isinstance(path, str) or not path.strip():
        raise origin.error(key_path, f"got {path!r}.", f"{IMPORT_PATH_FORM}.")
    module_name, attribute_path, import_failure = _split(path)
    if not module_name or not attribute_path:
        raise origin.error(key_path, f"{path!r} names no module and attribute.", f"{IMPORT_PATH_FORM}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise origin.error(
            key_path,
            f"cannot import module {module_name!r} of {path!r} ({type(error).__name__}: {error}).",
            f"{IMPORT_PATH_FORM}, whose module is installed or on sys.path.",
        ) from None
    value: Any = module
    for attribute in attribute_path.split("."):
        try:
            value = getattr(value, attribute)
        except AttributeError:
            detail = f" ({import_failure})" if import_failure else ""
            raise origin.error(
                key_path,
                f"module {module_name!r} has no attribute {attribute_path!r}{detail}.",
                f"{IMPORT_PATH_FORM}, naming an attribute that exists.",
            ) from None
    return value


def _split(path: str) -> tuple[str, str, str]:
    """Split ``path`` into module name, attribute path and the text of a failed import."""
    path = path.strip()
    if ":" in path:
        module_name, _, attribute_path = path.partition(":")
        return module_name, attribute_path, ""
    # Without a colon, the longest importable prefix is the module.
    parts = path.split(".")
    first_failure = ""
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            importlib.import_module(module_name)
        except ImportError as error:
            first_failure = first_failure or f"importing {module_name!r} failed: {error}"
            continue
        return module_name, ".".join(parts[cut:]), first_failure
    return parts[0], ".".join(parts[1:]), first_failure
