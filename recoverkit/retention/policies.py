"""Retention policies: which checkpoints survive after each save.

A :class:`RetentionPolicy` contains the arguments of
:meth:`Checkpointer.save_and_keep_only` as one value, so a config file or a
runner can declare them once, and adds ``keep_every_n_epochs``: end-of-epoch
checkpoints whose ``epoch`` meta value is a multiple of n are never deleted,
like Orbax's ``keep_period``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recoverkit.errors import InvalidRetentionPolicyError
from recoverkit.retention.selection import ckpt_recency
from recoverkit.storage.layout import Checkpoint
from recoverkit.storage.meta import END_OF_EPOCH_KEY

if TYPE_CHECKING:
    from recoverkit.checkpointer import Checkpointer

__all__ = [
    "IMPORTANCE_KEYS",
    "EPOCH_META_KEY",
    "KeepEveryNEpochs",
    "RetentionPolicy",
    "register_importance_key",
]

logger = logging.getLogger(__name__)

ImportanceKey = Callable[[Checkpoint], Any]
Predicate = Callable[[Checkpoint], bool]

#: The meta key whose value is the number of the epoch a checkpoint was saved in.
EPOCH_META_KEY = "epoch"

#: Importance keys that configs may name by a short name.
IMPORTANCE_KEYS: dict[str, ImportanceKey] = {"recency": ckpt_recency}


def register_importance_key(name: str, function: ImportanceKey) -> None:
    """Register ``function`` as an importance key that configs can name ``name``.

    Parameters
    ----------
    name : str
        The short name, such as ``"recency"``. Registering a name again
        replaces the earlier function.
    function : callable
        Called with a :class:`Checkpoint`; larger values are more important.

    Raises
    ------
    TypeError
        If ``function`` is not callable.
    """
    if not callable(function):
        raise TypeError(f"Importance key {name!r} must be callable, got {type(function).__name__}.")
    IMPORTANCE_KEYS[name] = function


@dataclass(frozen=True)
class KeepEveryNEpochs:
    """A ``ckpt_predicate`` that protects every n-th epoch from deletion.

    It returns False (so retention never deletes the checkpoint) for
    end-of-epoch checkpoints whose meta ``epoch`` is a positive multiple of
    ``n``, and otherwise returns what ``inner`` returns (True without one).
    Intra-epoch checkpoints are not protected, even when their epoch is a
    multiple of ``n``.

    Example
    -------
    >>> import pathlib
    >>> keep = KeepEveryNEpochs(5)
    >>> keep(Checkpoint(pathlib.Path("a"), {"epoch": 10, "end-of-epoch": True}, {}))
    False
    >>> keep(Checkpoint(pathlib.Path("b"), {"epoch": 11, "end-of-epoch": True}, {}))
    True
    """

    n: int
    inner: Predicate | None = None
    epoch_key: str = EPOCH_META_KEY

    def __call__(self, ckpt: Checkpoint) -> bool:
        if self.is_protected(ckpt):
            return False
        return True if self.inner is None else bool(self.inner(ckpt))

    def is_protected(self, ckpt: Checkpoint) -> bool:
        """Return True if ``ckpt`` is an end-of-epoch checkpoint of a multiple of n."""
        epoch = ckpt.meta.get(self.epoch_key)
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch <= 0:
            return False
        if not ckpt.meta.get(END_OF_EPOCH_KEY, True):
            return False
        return epoch % self.n == 0


@dataclass(frozen=True)
class RetentionPolicy:
    """The rules that decide which checkpoints to keep after a save.

    For every importance key, max key and min key the ``num_to_keep`` best
    checkpoints are kept, and with ``keep_recent`` the newest ones too (see
    :meth:`Checkpointer.delete_checkpoints`). Checkpoints that
    ``ckpt_predicate`` rejects, and those ``keep_every_n_epochs`` protects,
    are never deleted.

    Parameters
    ----------
    num_to_keep : int
        How many checkpoints each key keeps; at least 0.
    keep_recent : bool
        Whether the ``num_to_keep`` newest checkpoints are kept too.
    importance_keys : tuple of callable
        Functions of a :class:`Checkpoint`; the highest values are kept.
    max_keys, min_keys : tuple of str
        Meta keys whose highest (lowest) values are kept.
    ckpt_predicate : callable, optional
        Only checkpoints for which it returns True may be deleted.
    keep_every_n_epochs : int, optional
        If given, end-of-epoch checkpoints whose ``epoch`` meta value is a
        multiple of it are never deleted. Saves must then pass
        ``meta={"epoch": ...}``.

    Raises
    ------
    InvalidRetentionPolicyError
        If a field has an invalid value, or if the policy would delete every
        checkpoint: ``num_to_keep`` is 0, or no key keeps anything, while
        neither ``ckpt_predicate`` nor ``keep_every_n_epochs`` protects any.

    Example
    -------
    >>> policy = RetentionPolicy(num_to_keep=2, min_keys=("valid_loss",))
    >>> sorted(policy.save_and_keep_only_kwargs())
    ['ckpt_predicate', 'importance_keys', 'keep_recent', 'max_keys', 'min_keys', 'num_to_keep']
    """

    num_to_keep: int = 1
    keep_recent: bool = True
    importance_keys: tuple[ImportanceKey, ...] = ()
    max_keys: tuple[str, ...] = ()
    min_keys: tuple[str, ...] = ()
    ckpt_predicate: Predicate | None = None
    keep_every_n_epochs: int | None = None
    _predicate: Predicate | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # Accept lists from configs but store tuples, so the policy stays hashable.
        for name in ("importance_keys", "max_keys", "min_keys"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()
        predicate = self.ckpt_predicate
        if self.keep_every_n_epochs is not None:
            predicate = KeepEveryNEpochs(self.keep_every_n_epochs, inner=self.ckpt_predicate)
        object.__setattr__(self, "_predicate", predicate)

    @property
    def effective_predicate(self) -> Predicate | None:
        """The ``ckpt_predicate`` passed to the Checkpointer, including epoch protection."""
        return self._predicate

    def delete_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of :meth:`Checkpointer.delete_checkpoints`."""
        importance_keys = list(self.importance_keys)
        if self.keep_recent:
            importance_keys.append(ckpt_recency)
        return {
            "num_to_keep": self.num_to_keep,
            "importance_keys": importance_keys,
            "max_keys": list(self.max_keys),
            "min_keys": list(self.min_keys),
            "ckpt_predicate": self._predicate,
        }

    def save_and_keep_only_kwargs(self) -> dict[str, Any]:
        """Return the retention keyword arguments of :meth:`Checkpointer.save_and_keep_only`.

        Add ``meta``, ``end_of_epoch`` and the other save arguments yourself.
        """
        return {
            "num_to_keep": self.num_to_keep,
            "keep_recent": self.keep_recent,
            "importance_keys": list(self.importance_keys),
            "max_keys": list(self.max_keys),
            "min_keys": list(self.min_keys),
            "ckpt_predicate": self._predicate,
        }

    def apply(self, checkpointer: Checkpointer, verbosity: int = logging.INFO) -> None:
        """Delete the checkpoints of ``checkpointer`` that this policy does not keep.

        Parameters
        ----------
        checkpointer : Checkpointer
            Its checkpoints folder is pruned with
            :meth:`Checkpointer.delete_checkpoints`.
        verbosity : int
            The logging level of the message for each deleted checkpoint.
        """
        checkpointer.delete_checkpoints(**self.delete_kwargs(), verbosity=verbosity)

    def _validate(self) -> None:
        _check_int("num_to_keep", self.num_to_keep, minimum=0)
        if not isinstance(self.keep_recent, bool):
            raise InvalidRetentionPolicyError(
                f"keep_recent must be true or false, got {self.keep_recent!r}.", field="keep_recent"
            )
        for name in ("max_keys", "min_keys"):
            for key in getattr(self, name):
                if not isinstance(key, str) or not key:
                    raise InvalidRetentionPolicyError(
                        f"{name} must list meta key names (non-empty strings), got {key!r}.",
                        field=name,
                    )
        for function in self.importance_keys:
            if not callable(function):
                raise InvalidRetentionPolicyError(
                    f"importance_keys must list functions of a Checkpoint, got {function!r}.",
                    field="importance_keys",
                )
        if self.ckpt_predicate is not None and not callable(self.ckpt_predicate):
            raise InvalidRetentionPolicyError(
                f"ckpt_predicate must be a function of a Checkpoint, got {self.ckpt_predicate!r}.",
                field="ckpt_predicate",
            )
        if self.keep_every_n_epochs is not None:
            _check_int("keep_every_n_epochs", self.keep_every_n_epochs, minimum=1)
        self._check_keeps_something()

    def _check_keeps_something(self) -> None:
        protected = self.ckpt_predicate is not None or self.keep_every_n_epochs is not None
        if protected:
            return
        if self.num_to_keep == 0:
            raise InvalidRetentionPolicyError(
                "num_to_keep is 0 and nothing else protects a checkpoint, so every "
                "checkpoint would be deleted right after it is saved. Set num_to_keep "
                ">= 1, or keep some checkpoints with keep_every_n_epochs or ckpt_predicate.",
                field="num_to_keep",
            )
        has_key = self.keep_recent or self.importance_keys or self.max_keys or self.min_keys
        if not has_key:
            raise InvalidRetentionPolicyError(
                "keep_recent is false and no importance_keys, max_keys or min_keys are "
                "given, so every checkpoint would be deleted right after it is saved. "
                "Set keep_recent: true, or name a key such as min_keys: [valid_loss].",
                field="keep_recent",
            )


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidRetentionPolicyError(
            f"{name} must be an integer >= {minimum}, got {value!r}.", field=name
        )
