"""Default hook tables and the rules that pick a hook for an object.

The three tables map a class to the function that saves, loads or transfers
its instances. They are plain dicts, as in SpeechBrain, so existing code that
assigns ``DEFAULT_LOAD_HOOKS[MyClass] = my_loader`` keeps working.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_LOAD_HOOKS",
    "DEFAULT_SAVE_HOOKS",
    "DEFAULT_TRANSFER_HOOKS",
    "call_load_hook",
    "get_default_hook",
    "has_state_dict_protocol",
]

logger = logging.getLogger(__name__)

DEFAULT_SAVE_HOOKS: dict[type, Callable[..., Any]] = {}
DEFAULT_LOAD_HOOKS: dict[type, Callable[..., Any]] = {}
DEFAULT_TRANSFER_HOOKS: dict[type, Callable[..., Any]] = {}


def get_default_hook(obj: Any, default_hooks: Mapping[type, Callable[..., Any]]) -> Callable[..., Any] | None:
    """Find the default hook for ``obj`` in a hook table.

    The classes of the object's method resolution order are tried in turn,
    so a subclass finds the hook of its nearest registered base class.

    Parameters
    ----------
    obj : instance
        The object to find a hook for.
    default_hooks : dict
        A table from class to hook, such as ``DEFAULT_SAVE_HOOKS``.

    Returns
    -------
    callable or None
        The hook, or None if no class in the MRO is registered.

    Example
    -------
    >>> import torch
    >>> a = torch.nn.Module()
    >>> get_default_hook(a, DEFAULT_SAVE_HOOKS) == torch_save
    True
    """
    for cls in inspect.getmro(type(obj)):
        if cls in default_hooks:
            return default_hooks[cls]
    return None


def has_state_dict_protocol(obj: Any) -> bool:
    """Return True if ``obj`` has callable ``state_dict`` and ``load_state_dict``."""
    return callable(getattr(obj, "state_dict", None)) and callable(
        getattr(obj, "load_state_dict", None)
    )


def call_load_hook(hook: Callable[..., Any], obj: Any, path: Any, end_of_epoch: bool) -> Any:
    """Call a load hook written as ``(instance, path, end_of_epoch)`` or ``(instance, path)``."""
    if _accepts_three_positional(hook):
        return hook(obj, path, end_of_epoch)
    return hook(obj, path)


def _accepts_three_positional(hook: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(None, None, None)
    except TypeError:
        return False
    return True
