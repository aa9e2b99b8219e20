"""Helpers for runs with several processes (``torch.distributed``).

Without an initialised process group every helper behaves as in a single
process: this process is the main one, and barriers and broadcasts return at
once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch.distributed as dist

__all__ = [
    "barrier",
    "broadcast_object",
    "gather_failures",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "is_main_process",
    "main_process_only",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def is_distributed() -> bool:
    """Return True when a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Return this process's rank, 0 without a process group."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Return the number of processes, 1 without a process group."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Return True on rank 0, the process that writes shared files."""
    return get_rank() == 0


def barrier() -> None:
    """Wait until every process reaches this point."""
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Return rank 0's ``obj`` on every rank (a picklable value)."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_failures(error: BaseException | None) -> list[tuple[int, str]]:
    """Return ``(rank, message)`` for every rank that passed an error, on every rank.

    Each rank passes its own error or None. Without a process group the
    result only reflects this process.
    """
    message = None if error is None else f"{type(error).__name__}: {error}"
    if not is_distributed():
        return [] if message is None else [(0, message)]
    messages: list[str | None] = [None] * get_world_size()
    dist.all_gather_object(messages, message)
    return [(rank, text) for rank, text in enumerate(messages) if text is not None]


def main_process_only(function: _F) -> _F:
    """Wrap ``function`` so that it runs on rank 0 only and returns None elsewhere."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_main_process():
            return function(*args, **kwargs)
        return None

    wrapper._recoverkit_main_only = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
