"""The state dict that keymap rules work on, with the origin of every entry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from recoverkit.errors import KeymapError

__all__ = ["Change", "Entry", "RuleContext", "describe_entry", "describe_value", "rebuild_state"]

_UNCHANGED: Any = object()


@dataclass(frozen=True)
class Entry:
    """One value of the state dict being mapped.

    ``sources`` are the source keys the value was made from (several after a
    concatenation) and ``rules`` the labels of the rules that changed it, in
    order.
    """

    value: Any
    sources: tuple[str, ...]
    rules: tuple[str, ...] = ()

    def changed_by(self, label: str, value: Any = _UNCHANGED) -> Entry:
        """Return a copy marked as changed by the rule ``label``, with ``value`` if given."""
        new_value = self.value if value is _UNCHANGED else value
        return replace(self, value=new_value, rules=(*self.rules, label))


@dataclass
class Change:
    """One edit by a rule: the keys it removes and the entries it puts in their place."""

    consumed: tuple[str, ...]
    produced: list[tuple[str, Entry]] = field(default_factory=list)


@dataclass
class RuleContext:
    """The inputs a rule may read besides the state dict (the target's keys) and the running tallies."""

    target: Mapping[str, tuple[tuple[int, ...] | None, torch.dtype | None]] | None
    dropped: dict[str, str] = field(default_factory=dict)
    matches: dict[str, int] = field(default_factory=dict)


def describe_value(value: Any) -> str:
    """Return the shape and dtype of a tensor, or the type of any other value, for messages."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).replace("torch.", "")
        return f"shape {tuple(value.shape)} {dtype}"
    return f"a {type(value).__name__}"


def describe_entry(key: str, entry: Entry) -> str:
    """Return ``key`` with its source keys (when different) and value, for messages."""
    origin = ", ".join(entry.sources)
    if entry.sources == (key,):
        return f"{key!r} ({describe_value(entry.value)})"
    return f"{key!r} from source {origin} ({describe_value(entry.value)})"


def rebuild_state(state: dict[str, Entry], changes: Sequence[Change], label: str) -> dict[str, Entry]:
    """Apply the changes of one rule and return the new state dict.

    Produced entries take the place of the first key their change consumed,
    so the order of the keys stays readable. Two entries that land on one
    key raise :class:`KeymapError`.
    """
    owner: dict[str, int] = {}
    for index, change in enumerate(changes):
        for key in change.consumed:
            if key in owner:
                raise KeymapError(
                    f"Keymap rule {label!r} uses source key {key!r} twice. "
                    "Make its templates match each key at most once."
                )
            owner[key] = index

    produced: dict[str, Entry] = {}
    for change in changes:
        for key, entry in change.produced:
            if key in produced:
                raise _collision_error(label, key, produced[key], entry)
            if key in state and key not in owner:
                raise _collision_error(label, key, state[key], entry)
            produced[key] = entry

    new_state: dict[str, Entry] = {}
    emitted: set[int] = set()
    for key, entry in state.items():
        index = owner.get(key)
        if index is None:
            new_state[key] = entry
        elif index not in emitted:
            emitted.add(index)
            new_state.update(changes[index].produced)
    return new_state


def _collision_error(label: str, key: str, first: Entry, second: Entry) -> KeymapError:
    return KeymapError(
        f"Keymap rule {label!r} maps two values onto target key {key!r}: "
        f"{describe_entry(key, first)} and {describe_entry(key, second)}. "
        "Change the rule so that each target key gets one value, or drop one "
        "of the source keys with an earlier drop rule."
    )
