"""Decorators that declare a class's own save, load and transfer methods."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from recoverkit.distributed import main_process_only
from recoverkit.hooks.registry import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_SAVE_HOOKS,
    DEFAULT_TRANSFER_HOOKS,
)

__all__ = [
    "mark_as_loader",
    "mark_as_saver",
    "mark_as_transfer",
    "register_checkpoint_hooks",
]

logger = logging.getLogger(__name__)

_C = TypeVar("_C", bound=type)
_F = TypeVar("_F", bound=Callable[..., Any])

_SAVER_MARK = "_recoverkit_saver"
_LOADER_MARK = "_recoverkit_loader"
_TRANSFER_MARK = "_recoverkit_transfer"


def mark_as_saver(method: _F) -> _F:
    """Mark a method as the checkpoint saver of its class.

    The method must accept ``(instance, path)``: ``def save(self, path)``.
    Marking alone registers nothing: decorate the class with
    :func:`register_checkpoint_hooks` too. A class has one saver at most.
    """
    _check_positional_arity(method, (2,), "saver", "def save(self, path)")
    setattr(method, _SAVER_MARK, True)
    return method


def mark_as_loader(method: _F) -> _F:
    """Mark a method as the checkpoint loader of its class.

    The method must accept ``(instance, path, end_of_epoch)``:
    ``def load(self, path, end_of_epoch)``. A loader that ignores the flag may
    accept ``(instance, path)`` only. Decorate the class with
    :func:`register_checkpoint_hooks` too. A class has one loader at most.
    """
    _check_positional_arity(method, (3, 2), "loader", "def load(self, path, end_of_epoch)")
    setattr(method, _LOADER_MARK, True)
    return method


def mark_as_transfer(method: _F) -> _F:
    """Mark a method as the parameter transfer hook of its class.

    The method must accept ``(instance, path)``. Transfer loads prefer it to
    the loader; without one they use the loader. Decorate the class with
    :func:`register_checkpoint_hooks` too.
    """
    _check_positional_arity(method, (2,), "transfer hook", "def transfer(self, path)")
    setattr(method, _TRANSFER_MARK, True)
    return method


def register_checkpoint_hooks(cls: _C | None = None, save_on_main_only: bool = True) -> Any:
    """Register the methods of ``cls`` marked as saver, loader and transfer hook.

    Parameters
    ----------
    cls : class
        The class to register. The decorator also works with arguments:
        ``@register_checkpoint_hooks(save_on_main_only=False)``.
    save_on_main_only : bool
        By default the saver runs on the main process only. Pass False for
        savers that must run on every process, for example to gather
        sharded data before writing.

    Returns
    -------
    class
        ``cls`` itself, with its hooks in the default hook tables.

    Example
    -------
    >>> @register_checkpoint_hooks
    ... class CustomRecoverable:
    ...     def __init__(self, param):
    ...         self.param = int(param)
    ...
    ...     @mark_as_saver
    ...     def save(self, path):
    ...         with open(path, "w", encoding="utf-8") as fo:
    ...             fo.write(str(self.param))
    ...
    ...     @mark_as_loader
    ...     def load(self, path, end_of_epoch):
    ...         del end_of_epoch  # Unused here
    ...         with open(path, encoding="utf-8") as fi:
    ...             self.param = int(fi.read())
    """
    if cls is None:
        return lambda actual_cls: register_checkpoint_hooks(actual_cls, save_on_main_only)
    for name, method in vars(cls).items():
        if getattr(method, _SAVER_MARK, False):
            saver = main_process_only(method) if save_on_main_only else method
            DEFAULT_SAVE_HOOKS[cls] = saver
            logger.debug("Registered %s.%s as checkpoint saver", cls.__qualname__, name)
        if getattr(method, _LOADER_MARK, False):
            DEFAULT_LOAD_HOOKS[cls] = method
            logger.debug("Registered %s.%s as checkpoint loader", cls.__qualname__, name)
        if getattr(method, _TRANSFER_MARK, False):
            DEFAULT_TRANSFER_HOOKS[cls] = method
            logger.debug("Registered %s.%s as transfer hook", cls.__qualname__, name)
    return cls


def _check_positional_arity(
    method: Callable[..., Any], counts: tuple[int, ...], role: str, example: str
) -> None:
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return  # Builtins without a signature cannot be checked.
    for count in counts:
        try:
            signature.bind(*([None] * count))
            return
        except TypeError:
            continue
    expected = " or ".join(str(count) for count in counts)
    raise TypeError(
        f"Cannot use {getattr(method, '__qualname__', method)!r} as checkpoint "
        f"{role}: it must accept {expected} positional arguments, as in '{example}'."
    )
