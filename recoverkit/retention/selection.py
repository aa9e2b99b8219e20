"""Ranking checkpoints by importance and choosing which ones to keep.

Rules shared by every selection:

* at most one of ``importance_key``, ``max_key`` and ``min_key`` is given;
* with ``max_key`` or ``min_key``, checkpoints whose meta lacks the key, or
  has NaN for it, are not candidates. With ``importance_key``,
  checkpoints it scores NaN are not candidates;
* among equally important checkpoints the newest ranks first.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from recoverkit.storage.layout import Checkpoint
from recoverkit.storage.meta import UNIXTIME_KEY

__all__ = ["ckpt_recency", "rank_checkpoints", "select_checkpoints_to_keep"]

ImportanceKey = Callable[[Checkpoint], Any]


def ckpt_recency(ckpt: Checkpoint) -> float:
    """Return the importance of a checkpoint by recency: its ``unixtime``.

    It also shows the form of an importance key: a function of one
    :class:`Checkpoint` whose larger values mean more important.
    """
    return ckpt.meta[UNIXTIME_KEY]


def _recency_or_zero(ckpt: Checkpoint) -> float:
    value = ckpt.meta.get(UNIXTIME_KEY, 0.0)
    return value if isinstance(value, (int, float)) else 0.0


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def rank_checkpoints(
    checkpoints: Iterable[Checkpoint],
    importance_key: ImportanceKey | None = None,
    max_key: str | None = None,
    min_key: str | None = None,
    ckpt_predicate: Callable[[Checkpoint], bool] | None = None,
) -> list[Checkpoint]:
    """Return the candidate checkpoints, most important first.

    Raises
    ------
    ValueError
        If more than one of ``importance_key``, ``max_key`` and ``min_key``
        is given.
    """
    given = [
        name
        for name, value in (
            ("importance_key", importance_key),
            ("max_key", max_key),
            ("min_key", min_key),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise ValueError(
            f"Pass at most one of importance_key, max_key and min_key; got "
            f"{' and '.join(given)}."
        )
    candidates = list(checkpoints)
    if ckpt_predicate is not None:
        candidates = [ckpt for ckpt in candidates if ckpt_predicate(ckpt)]

    if max_key is not None or min_key is not None:
        key = max_key if max_key is not None else min_key
        candidates = [
            ckpt
            for ckpt in candidates
            if key in ckpt.meta and ckpt.meta[key] is not None and not _is_nan(ckpt.meta[key])
        ]
        if max_key is not None:
            return sorted(
                candidates,
                key=lambda ckpt: (ckpt.meta[key], _recency_or_zero(ckpt)),
                reverse=True,
            )
        return sorted(
            candidates,
            key=lambda ckpt: (ckpt.meta[key], -_recency_or_zero(ckpt)),
        )

    importance = importance_key if importance_key is not None else ckpt_recency
    scored = [(importance(ckpt), ckpt) for ckpt in candidates]
    # A NaN importance is no candidate, as a NaN meta value: ranking it last
    # would still return it, or keep it, when fewer valid checkpoints exist.
    valid = [(score, ckpt) for score, ckpt in scored if not _is_nan(score)]
    valid.sort(key=lambda item: (item[0], _recency_or_zero(item[1])), reverse=True)
    return [ckpt for _, ckpt in valid]


def select_checkpoints_to_keep(
    checkpoints: Sequence[Checkpoint],
    num_to_keep: int,
    importance_keys: Sequence[ImportanceKey] = (),
    max_keys: Sequence[str] = (),
    min_keys: Sequence[str] = (),
    ckpt_predicate: Callable[[Checkpoint], bool] | None = None,
) -> tuple[list[Checkpoint], dict[pathlib.Path, list[str]]]:
    """Split checkpoints into those retention may delete and the reasons to keep others.

    Only checkpoints for which ``ckpt_predicate`` returns True are candidates for
    deletion and for the ``num_to_keep`` places of each key. For every
    importance key, max key and min key, the ``num_to_keep`` best candidates
    are kept, so the kept set is the union over the keys.

    Returns
    -------
    (deletable, kept)
        ``deletable`` lists the candidates no key keeps, oldest first;
        ``kept`` maps the path of each kept candidate to the rules that
        keep it.
    """
    if not isinstance(num_to_keep, int) or isinstance(num_to_keep, bool) or num_to_keep < 0:
        raise ValueError(
            f"num_to_keep must be an integer >= 0, got {num_to_keep!r}. "
            "Pass 0 to delete every checkpoint the predicate selects."
        )
    candidates = list(checkpoints)
    if ckpt_predicate is not None:
        candidates = [ckpt for ckpt in candidates if ckpt_predicate(ckpt)]

    reasons: dict[pathlib.Path, list[str]] = {}
    rules: list[tuple[str, dict[str, Any]]] = []
    rules += [(f"top {num_to_keep} by {_key_name(fn)}", {"importance_key": fn}) for fn in importance_keys]
    rules += [(f"top {num_to_keep} by highest {key}", {"max_key": key}) for key in max_keys]
    rules += [(f"top {num_to_keep} by lowest {key}", {"min_key": key}) for key in min_keys]
    for label, ranking_args in rules:
        for ckpt in rank_checkpoints(candidates, **ranking_args)[:num_to_keep]:
            reasons.setdefault(ckpt.path, []).append(label)

    deletable = [ckpt for ckpt in candidates if ckpt.path not in reasons]
    deletable.sort(key=_recency_or_zero)
    return deletable, reasons


def _key_name(function: ImportanceKey) -> str:
    return getattr(function, "__name__", repr(function))
