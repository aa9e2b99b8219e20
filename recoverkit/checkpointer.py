"""The Checkpointer: saves recoverables into checkpoint folders and recovers them."""

from __future__ import annotations

import functools
import logging
import os
import pathlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from recoverkit import distributed
from recoverkit.errors import (
    CheckpointExistsError,
    MissingHookError,
    MissingRecoverableError,
    RecoverkitError,
)
from recoverkit.hooks.registry import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_SAVE_HOOKS,
    call_load_hook,
    get_default_hook,
    has_state_dict_protocol,
)
from recoverkit.hooks.torch_hooks import torch_recovery, torch_save
from recoverkit.retention.selection import (
    ckpt_recency,
    rank_checkpoints,
    select_checkpoints_to_keep,
)
from recoverkit.storage.atomic import (
    publish_dir,
    remove_dir_out_of_sight,
    remove_stale_dirs,
    write_file_durably,
)
from recoverkit.storage.layout import (
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    checkpoint_dirname,
    default_checkpoint_name,
    temporary_dirname,
    validate_checkpoint_name,
)
from recoverkit.storage.integrity import (
    VerificationCache,
    check_checkpoint,
    check_weights_only_loadable,
    recover_first_valid,
)
from recoverkit.storage.async_save import BackgroundSaver
from recoverkit.storage.listing import CheckpointLister, read_checkpoint
from recoverkit.storage.lock import acquire_dir_lock
from recoverkit.storage.manifest import build_manifest
from recoverkit.storage.torch_io import loading_options
from recoverkit.storage.meta import (
    END_OF_EPOCH_KEY,
    MANIFEST_KEY,
    UNIXTIME_KEY,
    dump_meta,
    to_plain_meta,
)

__all__ = ["Checkpointer"]

logger = logging.getLogger(__name__)

Hook = Callable[..., Any]
ImportanceKey = Callable[[Checkpoint], Any]
Predicate = Callable[[Checkpoint], bool]


class Checkpointer:
    """Saves checkpoints and recovers from them.

    A checkpoint is a folder with one file per recoverable and a meta file.
    Each save is written to a hidden folder, flushed to disk and published
    with one rename, so a crash never leaves a half-written checkpoint that
    listing would return.

    Parameters
    ----------
    checkpoints_dir : str or pathlib.Path
        The folder that contains the checkpoint folders. It is created if missing.
    recoverables : mapping, optional
        Name to object. The name identifies the object's file in every
        checkpoint, so it must stay the same between runs.
    custom_load_hooks : mapping, optional
        Name to load hook, for objects whose class has no suitable default
        hook. A load hook is called as ``hook(instance, path, end_of_epoch)``
        or, if it takes two arguments, ``hook(instance, path)``.
    custom_save_hooks : mapping, optional
        Name to save hook, called as ``hook(instance, path)``.
    allow_partial_load : bool, optional
        If True, loading a checkpoint that lacks files for some recoverables
        loads the others. If False (the default) that raises RuntimeError.
    verify_files : bool, optional
        If True (the default), loading compares every file with the size and
        XXH3-64 checksum recorded at save time and raises
        :class:`CorruptCheckpointError` on a difference. Pass False to skip
        reading the files twice; retention then checks sizes only.
    strict_recovery : bool, optional
        If False (the default), :meth:`recover_if_possible` skips a checkpoint
        that fails verification or fails to load, with a warning, and loads
        the next one by the same ranking. If True it raises instead.
    async_save : bool, optional
        If True, :meth:`save_checkpoint` returns once the state is copied in
        memory and writes the files in a background thread; see
        :mod:`recoverkit.storage.async_save`. Listing, loading, deleting and
        the next save wait for the save in flight, and :meth:`wait` waits
        explicitly. An error in the background is raised by the next of
        those calls. The in-memory copy is kept between saves, so the state
        takes twice its memory. Only single-process runs save in the
        background.
    mmap : bool, optional
        If True, parameter files are loaded with ``torch.load(mmap=True)``:
        modules take over the mapped tensors instead of copying them, so
        loading time does not grow with model size until the parameters are
        touched. Writes to the loaded tensors never reach the files.

    Example
    -------
    >>> class Recoverable(torch.nn.Module):
    ...     def __init__(self, param):
    ...         super().__init__()
    ...         self.param = torch.nn.Parameter(torch.tensor([param]))
    ...     def forward(self, x):
    ...         return x * self.param
    >>> tempdir = getfixture('tmpdir')
    >>> recoverable = Recoverable(1.)
    >>> checkpointer = Checkpointer(tempdir, {'recoverable': recoverable})
    >>> first_ckpt = checkpointer.save_checkpoint()
    >>> recoverable.param.data = torch.tensor([2.])
    >>> loaded_ckpt = checkpointer.recover_if_possible()
    >>> assert recoverable.param.data == torch.tensor([1.])
    >>> # By default, save_and_keep_only deletes all but the newest checkpoint:
    >>> checkpointer.save_and_keep_only()
    >>> assert first_ckpt not in checkpointer.list_checkpoints()
    """

    def __init__(
        self,
        checkpoints_dir: str | os.PathLike,
        recoverables: Mapping[str, Any] | None = None,
        custom_load_hooks: Mapping[str, Hook] | None = None,
        custom_save_hooks: Mapping[str, Hook] | None = None,
        allow_partial_load: bool = False,
        verify_files: bool = True,
        strict_recovery: bool = False,
        async_save: bool = False,
        mmap: bool = False,
    ) -> None:
        self.checkpoints_dir = pathlib.Path(checkpoints_dir)
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        self.recoverables: dict[str, Any] = {}
        self.custom_load_hooks: dict[str, Hook] = dict(custom_load_hooks or {})
        self.custom_save_hooks: dict[str, Hook] = dict(custom_save_hooks or {})
        self.optional_load: set[str] = set()
        self.allow_partial_load = allow_partial_load
        self._lister = CheckpointLister(self.checkpoints_dir)
        self.verify_files = verify_files
        self.strict_recovery = strict_recovery
        self._verification_cache = VerificationCache()
        self._background = BackgroundSaver() if async_save else None
        self.mmap = mmap
        if recoverables is not None:
            self.add_recoverables(recoverables)
        self._check_custom_hook_names()

    def __repr__(self) -> str:
        return (
            f"Checkpointer({str(self.checkpoints_dir)!r}, "
            f"recoverables={list(self.recoverables)})"
        )

    # Registration

    def add_recoverable(
        self,
        name: str,
        obj: Any,
        custom_load_hook: Hook | None = None,
        custom_save_hook: Hook | None = None,
        optional_load: bool = False,
    ) -> None:
        """Register one recoverable, optionally with its own hooks.

        Parameters
        ----------
        name : str
            Unique name of the recoverable. Its file in each checkpoint is
            ``<name>.ckpt``.
        obj : object
            The object to save and recover.
        custom_load_hook : callable, optional
            Called as ``hook(obj, path, end_of_epoch)`` or ``hook(obj, path)``
            to load the object's file.
        custom_save_hook : callable, optional
            Called as ``hook(obj, path)`` to write the object's file.
        optional_load : bool, optional
            If True, a checkpoint without a file for this recoverable still
            loads, and the object keeps its current state. Use it for objects
            added after older checkpoints were saved, for example a
            ``GradScaler`` when switching a run to mixed precision.

        Raises
        ------
        TypeError
            If neither a custom hook nor a default hook can save or load
            ``obj``.
        """
        _validate_recoverable_name(name)
        if custom_load_hook is not None:
            self.custom_load_hooks[name] = custom_load_hook
        if custom_save_hook is not None:
            self.custom_save_hooks[name] = custom_save_hook
        self._check_hooks(name, obj)
        if name in self.recoverables:
            logger.debug("Replacing recoverable %r", name)
        self.recoverables[name] = obj
        if optional_load:
            self.optional_load.add(name)
        else:
            self.optional_load.discard(name)

    def add_recoverables(self, recoverables: Mapping[str, Any]) -> None:
        """Register every name-to-object pair of ``recoverables``.

        Raises
        ------
        TypeError
            If ``recoverables`` is not a mapping, or an object has no hooks.
        """
        if not isinstance(recoverables, Mapping):
            raise TypeError(
                "recoverables must be a mapping from name to object, such as "
                f"{{'model': model}}; got {type(recoverables).__name__}."
            )
        for name, obj in recoverables.items():
            self.add_recoverable(name, obj)

    # Saving

    def save_checkpoint(
        self,
        meta: Mapping[str, Any] | None = None,
        end_of_epoch: bool = True,
        name: str | None = None,
        verbosity: int = logging.INFO,
    ) -> Checkpoint | None:
        """Save a checkpoint of every recoverable.

        Parameters
        ----------
        meta : mapping, optional
            Values stored in the meta file, such as validation metrics, for
            selecting checkpoints later. ``unixtime`` and ``end-of-epoch`` are
            always added. One-element tensors and NumPy scalars are stored as
            numbers; other values that YAML cannot hold raise before any file
            is written.
        end_of_epoch : bool, optional
            Whether the checkpoint is at the end of an epoch. Loaders such as
            :class:`EpochCounter` use it.
        name : str, optional
            A custom name; the folder is ``CKPT+<name>``. By default the name
            is made of the time and a random suffix. An existing name raises
            :class:`CheckpointExistsError`, and nothing is overwritten.
        verbosity : int, optional
            The logging level of the message for this save.

        Returns
        -------
        Checkpoint or None
            The saved checkpoint, or None on processes other than the main one.
        """
        self.wait()
        full_meta = self._build_meta(meta, end_of_epoch)
        if name is not None:
            validate_checkpoint_name(name)
        self._check_all_hooks()

        tmp_dir, final_dir = self._prepare_save_dir(name, full_meta[UNIXTIME_KEY])
        if self._background is not None and distributed.get_world_size() == 1:
            return self._background.start_save(
                self.recoverables, self._save_hook, tmp_dir, final_dir, full_meta, self._finish_save, verbosity
            )
        # Every rank learns whether any rank failed, so none waits for a rank that raised.
        error = _capture(self._run_save_hooks, tmp_dir)
        _raise_if_any_rank_failed(error, tmp_dir, "writing its files")
        if distributed.is_main_process():
            error = _capture(self._finish_save, tmp_dir, final_dir, full_meta)
        _raise_if_any_rank_failed(error, tmp_dir, "publishing it")

        if not distributed.is_main_process():
            return None
        result = read_checkpoint(final_dir)
        if result is None:
            raise RecoverkitError(
                f"Checkpoint {final_dir} was published but cannot be read back. "
                "Check that the file system is not full and reports writes correctly."
            )
        checkpoint = result[0]
        logger.log(verbosity, "Saved a checkpoint in %s", final_dir)
        return checkpoint

    def save_and_keep_only(
        self,
        meta: Mapping[str, Any] | None = None,
        end_of_epoch: bool = True,
        name: str | None = None,
        num_to_keep: int = 1,
        keep_recent: bool = True,
        importance_keys: Sequence[ImportanceKey] = (),
        max_keys: Sequence[str] = (),
        min_keys: Sequence[str] = (),
        ckpt_predicate: Predicate | None = None,
        verbosity: int = logging.INFO,
    ) -> None:
        """Save a checkpoint, then delete the least important ones.

        It combines :meth:`save_checkpoint` and :meth:`delete_checkpoints`.
        For every importance key, max key and min key, the ``num_to_keep``
        best checkpoints are kept; with ``keep_recent`` the newest ones are
        kept too. Returns nothing, because the new checkpoint itself may be
        deleted by the retention rules.
        """
        _check_num_to_keep(num_to_keep)
        _check_key_lists(max_keys, min_keys, importance_keys)
        self.save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=verbosity)
        keys = list(importance_keys)
        if keep_recent:
            keys.append(ckpt_recency)
        retention = functools.partial(
            self.delete_checkpoints,
            num_to_keep=num_to_keep,
            max_keys=list(max_keys),
            min_keys=list(min_keys),
            importance_keys=keys,
            ckpt_predicate=ckpt_predicate,
            verbosity=verbosity,
        )
        if self._background is not None and self._background.busy:
            self._background.submit(retention, "deletion of old checkpoints")
        else:
            retention()

    def wait(self) -> None:
        """Wait until the checkpoint being saved in the background is published.

        Returns at once without ``async_save`` or when no save is in flight.

        Raises
        ------
        Exception
            The error that made the background save fail, if it has not been
            raised yet. The failed checkpoint was not published.
        """
        if self._background is not None:
            self._background.wait()

    # Finding and loading

    def list_checkpoints(self) -> list[Checkpoint]:
        """Return every checkpoint in the checkpoints folder.

        Hidden folders of saves or deletes in progress, other files and
        folders without a readable meta file are not listed.
        """
        self.wait()
        return [checkpoint for checkpoint, _manifest in self._lister.list()]

    def find_checkpoint(
        self,
        importance_key: ImportanceKey | None = None,
        max_key: str | None = None,
        min_key: str | None = None,
        ckpt_predicate: Predicate | None = None,
    ) -> Checkpoint | None:
        """Return the most important checkpoint, or None if there is none.

        With none of ``importance_key``, ``max_key`` and ``min_key`` the
        newest checkpoint is returned. At most one of them may be given.

        Parameters
        ----------
        importance_key : callable, optional
            Called with each :class:`Checkpoint`; the highest value wins.
        max_key : str, optional
            The checkpoint with the highest meta value for this key wins.
            Only checkpoints that have the key, with a value that is not NaN,
            are considered.
        min_key : str, optional
            As ``max_key``, but the lowest value wins.
        ckpt_predicate : callable, optional
            Only checkpoints for which it returns True are considered.
        """
        found = self.find_checkpoints(
            importance_key=importance_key,
            max_key=max_key,
            min_key=min_key,
            ckpt_predicate=ckpt_predicate,
            max_num_checkpoints=1,
        )
        return found[0] if found else None

    def find_checkpoints(
        self,
        importance_key: ImportanceKey | None = None,
        max_key: str | None = None,
        min_key: str | None = None,
        ckpt_predicate: Predicate | None = None,
        max_num_checkpoints: int | None = None,
    ) -> list[Checkpoint]:
        """Return checkpoints, most important first.

        Takes the arguments of :meth:`find_checkpoint`, plus
        ``max_num_checkpoints``: the largest number to return, or None for
        all.
        """
        ranked = rank_checkpoints(
            self.list_checkpoints(),
            importance_key=importance_key,
            max_key=max_key,
            min_key=min_key,
            ckpt_predicate=ckpt_predicate,
        )
        if max_num_checkpoints is not None:
            ranked = ranked[:max_num_checkpoints]
        return ranked

    def recover_if_possible(
        self,
        importance_key: ImportanceKey | None = None,
        max_key: str | None = None,
        min_key: str | None = None,
        ckpt_predicate: Predicate | None = None,
    ) -> Checkpoint | None:
        """Load the most important checkpoint, if there is one.

        Takes the arguments of :meth:`find_checkpoint`. Returns the loaded
        checkpoint, or None (and loads nothing) when no checkpoint matches.
        A checkpoint that fails verification or fails to load is skipped with
        a warning naming it and why. The next one by the same ranking is
        loaded instead, and the broken one stays on disk. With
        ``strict_recovery`` the first failure raises instead.

        Raises
        ------
        CorruptCheckpointError
            If every matching checkpoint is broken, or with
            ``strict_recovery`` if the most important one is.
        """
        candidates = self.find_checkpoints(
            importance_key=importance_key,
            max_key=max_key,
            min_key=min_key,
            ckpt_predicate=ckpt_predicate,
        )
        if not candidates:
            logger.info("No checkpoint found in %s: starting from scratch", self.checkpoints_dir)
            return None
        return recover_first_valid(candidates, self.load_checkpoint, strict=self.strict_recovery)

    def load_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Load every recoverable from ``checkpoint``.

        Raises
        ------
        RuntimeError
            If the checkpoint has no file for a recoverable that is neither
            ``optional_load`` nor covered by ``allow_partial_load``. No
            recoverable is loaded in that case.
        CorruptCheckpointError
            With ``verify_files``, if a file differs from the manifest. No
            recoverable is loaded in that case.
        """
        self.wait()
        self._check_all_hooks()
        if self.verify_files:
            check_checkpoint(checkpoint.path)
        end_of_epoch = bool(checkpoint.meta.get(END_OF_EPOCH_KEY, True))
        to_load = self._recoverables_to_load(checkpoint)
        with loading_options(mmap=self.mmap):
            for name in to_load:
                obj = self.recoverables[name]
                hook = self._load_hook(name, obj)
                call_load_hook(hook, obj, checkpoint.paramfiles[name], end_of_epoch)
        logger.info("Loaded checkpoint %s", checkpoint.path)

    # Deleting

    def delete_checkpoints(
        self,
        *,
        num_to_keep: int = 1,
        min_keys: Sequence[str] | None = None,
        max_keys: Sequence[str] | None = None,
        importance_keys: Sequence[ImportanceKey] = (ckpt_recency,),
        ckpt_predicate: Predicate | None = None,
        verbosity: int = logging.INFO,
    ) -> None:
        """Delete the least important checkpoints.

        For every importance key, max key and min key the ``num_to_keep``
        best checkpoints are kept; all other checkpoints for which
        ``ckpt_predicate`` returns True are deleted. Checkpoints the predicate
        rejects are never deleted and take no place among the kept ones.
        Folders that recoverkit did not write (such as SpeechBrain's) are
        never deleted. Keyword arguments only, because deletion is permanent.

        Parameters
        ----------
        num_to_keep : int
            How many checkpoints to keep per key; 0 deletes every candidate.
        min_keys : list of str, optional
            Meta keys for which the lowest values are kept.
        max_keys : list of str, optional
            Meta keys for which the highest values are kept.
        importance_keys : list of callable, optional
            Functions of a :class:`Checkpoint`; the highest values are kept.
            The default keeps the newest checkpoints.
        ckpt_predicate : callable, optional
            Only checkpoints for which it returns True may be deleted.
        verbosity : int
            The logging level of the messages for each deleted checkpoint.

        Raises
        ------
        ValueError
            If ``num_to_keep`` is negative.
        TypeError
            If ``max_keys`` or ``min_keys`` is a string, or ``importance_keys``
            is a single function, instead of a list.
        """
        _check_num_to_keep(num_to_keep)
        _check_key_lists(max_keys, min_keys, importance_keys)
        self.wait()
        if not distributed.is_main_process():
            # Rank 0 alone selects and deletes. Listing here too would race with
            # its deletions and report the folders it removes as broken.
            distributed.barrier()
            return
        listed = self._without_broken(self._lister.list())
        deletable, _kept = select_checkpoints_to_keep(
            [checkpoint for checkpoint, _manifest in listed],
            num_to_keep=num_to_keep,
            importance_keys=list(importance_keys),
            max_keys=list(max_keys or ()),
            min_keys=list(min_keys or ()),
            ckpt_predicate=ckpt_predicate,
        )
        written_by_us = {checkpoint.path for checkpoint, manifest in listed if manifest is not None}
        if distributed.is_main_process():
            self._acquire_lock()
            for checkpoint in deletable:
                if checkpoint.path not in written_by_us:
                    logger.debug("Not deleting %s: recoverkit did not write it", checkpoint.path)
                    continue
                remove_dir_out_of_sight(checkpoint.path)
                logger.log(verbosity, "Deleted checkpoint %s", checkpoint.path)
        distributed.barrier()

    # Locking

    def acquire_lock(self) -> None:
        """Claim the checkpoints folder for this process before the first save.

        Saving and deleting claim it anyway. Call this at the start of a run,
        so that a second run pointed at the same folder fails at once.

        Raises
        ------
        CheckpointLockedError
            If another live process has locked the folder.
        """
        if distributed.is_main_process():
            self._acquire_lock()

    # Internals

    def _acquire_lock(self) -> None:
        acquire_dir_lock(self.checkpoints_dir)

    def _build_meta(self, meta: Mapping[str, Any] | None, end_of_epoch: bool) -> dict[str, Any]:
        full_meta: dict[str, Any] = {
            UNIXTIME_KEY: time.time(),
            END_OF_EPOCH_KEY: bool(end_of_epoch),
        }
        full_meta.update(to_plain_meta(meta if meta is not None else {}))
        return full_meta

    def _prepare_save_dir(self, name: str | None, unixtime: float) -> tuple[pathlib.Path, pathlib.Path]:
        """Create the hidden folder of a new save on rank 0 and share its path."""
        setup: tuple[str, str] | BaseException | None = None
        if distributed.is_main_process():
            try:
                setup = self._create_save_dir(name, unixtime)
            except Exception as error:  # shared with the other ranks, then raised
                setup = error
        setup = distributed.broadcast_object(setup)
        if isinstance(setup, BaseException):
            raise setup
        assert setup is not None
        return pathlib.Path(setup[0]), pathlib.Path(setup[1])

    def _create_save_dir(self, name: str | None, unixtime: float) -> tuple[str, str]:
        self._acquire_lock()
        remove_stale_dirs(self.checkpoints_dir)
        if name is None:
            name = default_checkpoint_name(unixtime)
        final_dir = self.checkpoints_dir / checkpoint_dirname(name)
        if final_dir.exists():
            raise CheckpointExistsError(
                f"Cannot save checkpoint {name!r}: {final_dir} already exists. "
                "Choose another name, or delete the old checkpoint first "
                "(delete_checkpoints with a ckpt_predicate selecting it)."
            )
        tmp_dir = self.checkpoints_dir / temporary_dirname(final_dir.name)
        tmp_dir.mkdir()
        return str(tmp_dir), str(final_dir)

    def _run_save_hooks(self, tmp_dir: pathlib.Path) -> None:
        for name, obj in self.recoverables.items():
            hook = self._save_hook(name, obj)
            hook(obj, tmp_dir / f"{name}{PARAMFILE_EXT}")
            if distributed.is_main_process():
                check_weights_only_loadable(tmp_dir / f"{name}{PARAMFILE_EXT}", name)

    def _finish_save(self, tmp_dir: pathlib.Path, final_dir: pathlib.Path, full_meta: dict[str, Any]) -> None:
        manifest = build_manifest(tmp_dir, self.recoverables)
        for name in self.recoverables:
            if name not in manifest["recoverables"]:
                logger.warning(
                    "The save hook of recoverable %r wrote no file %s%s: the checkpoint "
                    "will not contain it",
                    name,
                    name,
                    PARAMFILE_EXT,
                )
        meta_text = dump_meta({**full_meta, MANIFEST_KEY: manifest})
        write_file_durably(tmp_dir / METAFNAME, meta_text.encode("utf-8"))
        publish_dir(tmp_dir, final_dir)

    def _without_broken(self, listed: list[tuple[Checkpoint, Any]]) -> list[tuple[Checkpoint, Any]]:
        """Leave out broken checkpoints, so retention neither keeps nor deletes them."""
        valid = []
        for checkpoint, manifest in listed:
            result = self._verification_cache.verify(checkpoint.path, manifest, checksums=self.verify_files)
            if result.ok:
                valid.append((checkpoint, manifest))
                continue
            level = logging.WARNING if self._verification_cache.first_report(result) else logging.DEBUG
            logger.log(
                level,
                "Checkpoint %s is broken (%s): retention leaves it on disk and does not "
                "count it among the kept checkpoints",
                checkpoint.path,
                result.describe(),
            )
        self._verification_cache.forget_missing({checkpoint.path for checkpoint, _ in listed})
        return valid

    def _recoverables_to_load(self, checkpoint: Checkpoint) -> list[str]:
        missing = [name for name in self.recoverables if name not in checkpoint.paramfiles]
        required = [name for name in missing if name not in self.optional_load]
        if required and not self.allow_partial_load:
            raise MissingRecoverableError(
                f"Checkpoint {checkpoint.path} has no file for recoverable(s) "
                f"{', '.join(repr(name) for name in required)}. If they were added "
                "after this checkpoint was saved, register them with "
                "optional_load=True (add_recoverable(name, obj, optional_load=True)); "
                "to load whatever the checkpoint has, create the Checkpointer "
                "with allow_partial_load=True."
            )
        for name in missing:
            logger.info(
                "Checkpoint %s has no file for recoverable %r: it keeps its current state",
                checkpoint.path,
                name,
            )
        return [name for name in self.recoverables if name in checkpoint.paramfiles]

    def _save_hook(self, name: str, obj: Any) -> Hook:
        hook = self._resolve_hook(name, obj, self.custom_save_hooks, DEFAULT_SAVE_HOOKS, torch_save)
        if hook is None:
            raise _missing_hook_error(name, obj, "save")
        return hook

    def _load_hook(self, name: str, obj: Any) -> Hook:
        hook = self._resolve_hook(name, obj, self.custom_load_hooks, DEFAULT_LOAD_HOOKS, torch_recovery)
        if hook is None:
            raise _missing_hook_error(name, obj, "load")
        return hook

    @staticmethod
    def _resolve_hook(
        name: str,
        obj: Any,
        custom_hooks: Mapping[str, Hook],
        default_hooks: Mapping[type, Hook],
        protocol_hook: Hook,
    ) -> Hook | None:
        if name in custom_hooks:
            return custom_hooks[name]
        hook = get_default_hook(obj, default_hooks)
        if hook is None and has_state_dict_protocol(obj):
            hook = protocol_hook
        return hook

    def _check_hooks(self, name: str, obj: Any) -> None:
        self._save_hook(name, obj)
        self._load_hook(name, obj)

    def _check_all_hooks(self) -> None:
        for name, obj in self.recoverables.items():
            self._check_hooks(name, obj)

    def _check_custom_hook_names(self) -> None:
        for kind, hooks in (("custom_load_hooks", self.custom_load_hooks), ("custom_save_hooks", self.custom_save_hooks)):
            unknown = sorted(set(hooks) - set(self.recoverables))
            if unknown:
                logger.warning(
                    "%s names %s, which are not recoverables yet: register them "
                    "with add_recoverable before saving",
                    kind,
                    unknown,
                )


def _missing_hook_error(name: str, obj: Any, action: str) -> MissingHookError:
    cls = type(obj)
    return MissingHookError(
        f"Cannot {action} recoverable {name!r}: no {action} hook for objects of type "
        f"{cls.__module__}.{cls.__qualname__}. Give the class state_dict() and "
        "load_state_dict() methods, or decorate it with @register_checkpoint_hooks "
        "and mark its methods with @mark_as_saver and @mark_as_loader, or pass "
        "custom_save_hook and custom_load_hook to add_recoverable."
    )


def _validate_recoverable_name(name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(
            f"Invalid recoverable name {name!r}: it names the file <name>{PARAMFILE_EXT} "
            "inside each checkpoint, so it must be a non-empty string without "
            "path separators."
        )
    if name.startswith("."):
        raise ValueError(f"Invalid recoverable name {name!r}: it must not start with '.'.")


def _check_num_to_keep(num_to_keep: int) -> None:
    if not isinstance(num_to_keep, int) or isinstance(num_to_keep, bool) or num_to_keep < 0:
        raise ValueError(
            f"num_to_keep must be an integer >= 0, got {num_to_keep!r}. "
            "Pass 0 to delete every checkpoint the predicate selects."
        )


def _check_key_lists(max_keys: Any, min_keys: Any, importance_keys: Any) -> None:
    # A bare string would be split into one-letter keys that match nothing,
    # so retention would silently delete the checkpoints the caller meant to keep.
    for parameter, keys in (("max_keys", max_keys), ("min_keys", min_keys)):
        if isinstance(keys, str):
            raise TypeError(
                f"{parameter} must be a list of meta keys, got the string {keys!r}. "
                f"Pass {parameter}=[{keys!r}]."
            )
    if callable(importance_keys):
        raise TypeError(
            "importance_keys must be a list of functions, got the function "
            f"{getattr(importance_keys, '__name__', importance_keys)!r}. "
            "Pass importance_keys=[function]."
        )


def _capture(function: Callable[..., Any], *args: Any) -> BaseException | None:
    try:
        function(*args)
    except BaseException as error:  # re-raised by _raise_if_any_rank_failed
        return error
    return None


def _raise_if_any_rank_failed(error: BaseException | None, tmp_dir: pathlib.Path, step: str) -> None:
    """Share each rank's failure of a save step with every rank, then raise on all of them."""
    failures = distributed.gather_failures(error)
    if not failures:
        return
    if distributed.is_main_process():
        _remove_quietly(tmp_dir)
    if error is not None:
        raise error
    rank, message = failures[0]
    raise RecoverkitError(
        f"Checkpoint save failed on rank {rank} while {step}: {message}. "
        "No checkpoint was published; see that rank's log for the traceback."
    )


def _remove_quietly(path: pathlib.Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
