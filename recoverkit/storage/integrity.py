"""Verification of checkpoints against their file manifest, and fallback on recovery.

Every checkpoint recoverkit writes lists, in the ``recoverkit-files`` entry of
its meta file, the size and XXH3-64 checksum of each file. Verification
compares the files on disk with that list and reports each file that is
missing, has another size (truncated, zero-length, grown) or another checksum
(altered). Files that the manifest does not list are ignored, so a stray
editor backup inside a checkpoint folder does not make it broken.

Folders that recoverkit did not write (SpeechBrain's) have no manifest. They
cannot be verified and count as valid, as they did before verification.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from recoverkit.errors import (
    CorruptCheckpointError,
    MissingHookError,
    MissingRecoverableError,
    UnsafeCheckpointFileError,
)
from recoverkit.storage.layout import METAFNAME, PARAMFILE_EXT, Checkpoint
from recoverkit.storage.listing import split_manifest
from recoverkit.storage.manifest import file_checksum
from recoverkit.storage.meta import parse_meta

__all__ = [
    "FileProblem",
    "VerificationCache",
    "VerificationResult",
    "check_checkpoint",
    "check_weights_only_loadable",
    "recover_first_valid",
    "verify_checkpoint_dir",
    "verify_manifest",
]

logger = logging.getLogger(__name__)

_ZIP_MAGIC = b"PK\x03\x04"
# Longer load errors (a state dict with thousands of mismatched keys) are cut in logs.
_MAX_REASON_CHARS = 600

# Errors that mean the recipe is wrong, not the checkpoint, so falling back to
# an older checkpoint would not help and would hide the real problem.
_RECIPE_ERRORS = (MissingRecoverableError, MissingHookError)


@dataclasses.dataclass(frozen=True)
class FileProblem:
    """A file of a checkpoint that differs from what its manifest records.

    ``file`` is the path relative to the checkpoint folder, ``expected`` and
    ``found`` describe the recorded and the actual state in words.
    """

    file: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.file}: expected {self.expected}, found {self.found}"


@dataclasses.dataclass(frozen=True)
class VerificationResult:
    """The outcome of verifying one checkpoint folder.

    ``has_manifest`` is False for folders that recoverkit did not write; they
    are reported valid because nothing can be checked. ``checksums`` is True
    when file contents were compared, False when only sizes were.
    """

    path: pathlib.Path
    problems: tuple[FileProblem, ...]
    has_manifest: bool
    checksums: bool

    @property
    def ok(self) -> bool:
        """True when no file differs from the manifest."""
        return not self.problems

    def describe(self) -> str:
        """Return the problems as one line, for logs and error messages."""
        if self.ok:
            return "valid"
        return "; ".join(str(problem) for problem in self.problems)


def verify_manifest(
    ckpt_dir: pathlib.Path, manifest: dict[str, Any], checksums: bool = True
) -> list[FileProblem]:
    """Compare the files in ``ckpt_dir`` with ``manifest``.

    Parameters
    ----------
    ckpt_dir : pathlib.Path
        The checkpoint folder.
    manifest : dict
        The ``recoverkit-files`` entry of its meta file.
    checksums : bool, optional
        If False, only presence and sizes are compared, which costs one
        ``stat`` per file instead of reading every byte.

    Returns
    -------
    list of FileProblem
        Empty when every listed file matches.
    """
    files = manifest.get("files")
    names = manifest.get("recoverables")
    if not isinstance(files, dict) or not isinstance(names, list):
        return [FileProblem(METAFNAME, "a file manifest with 'files' and 'recoverables'", "a malformed manifest")]

    problems = _problems_of_recoverables(names, files)
    for relative, record in sorted(files.items()):
        problem = _verify_file(ckpt_dir, relative, record, checksums)
        if problem is not None:
            problems.append(problem)
    return problems


def verify_checkpoint_dir(ckpt_dir: pathlib.Path, checksums: bool = True) -> VerificationResult:
    """Read the meta file of ``ckpt_dir`` and verify the folder against its manifest.

    A missing or unreadable meta file is reported as a problem of
    ``CKPT.yaml``.
    """
    ckpt_dir = pathlib.Path(ckpt_dir)
    manifest, meta_problem = _read_manifest(ckpt_dir)
    if meta_problem is not None:
        return VerificationResult(ckpt_dir, (meta_problem,), has_manifest=False, checksums=checksums)
    if manifest is None:
        return VerificationResult(ckpt_dir, (), has_manifest=False, checksums=checksums)
    problems = verify_manifest(ckpt_dir, manifest, checksums)
    return VerificationResult(ckpt_dir, tuple(problems), has_manifest=True, checksums=checksums)


def check_checkpoint(ckpt_dir: pathlib.Path, checksums: bool = True) -> VerificationResult:
    """Verify ``ckpt_dir`` and raise if any file differs from its manifest.

    Raises
    ------
    CorruptCheckpointError
        Naming the checkpoint and, for each broken file, what differs.
    """
    result = verify_checkpoint_dir(ckpt_dir, checksums)
    if not result.ok:
        raise CorruptCheckpointError(
            f"Checkpoint {result.path} is broken: {result.describe()}. "
            "Recover from another checkpoint, or pass verify_files=False to the "
            "Checkpointer to load it anyway."
        )
    return result


class VerificationCache:
    """Verifies checkpoints and reuses each result while the files stay unchanged.

    A result is reused while every file listed in the manifest keeps its
    inode, size, modification time and change time, so retention can check
    all checkpoints at every save without reading them again.

    NOTE: damage that leaves those four values unchanged (bit rot on the
    disk itself) is missed by a reused result until the process restarts.
    Loading a checkpoint never uses the cache, so it is caught at recovery.
    """

    def __init__(self) -> None:
        self._results: dict[tuple[pathlib.Path, bool], tuple[Any, VerificationResult]] = {}
        self._reported: set[int] = set()

    def verify(
        self, ckpt_dir: pathlib.Path, manifest: dict[str, Any] | None, checksums: bool = True
    ) -> VerificationResult:
        """Return the verification result of ``ckpt_dir`` with ``manifest``."""
        if manifest is None:
            return VerificationResult(ckpt_dir, (), has_manifest=False, checksums=checksums)
        key = (ckpt_dir, checksums)
        signature = _files_signature(ckpt_dir, manifest)
        cached = self._results.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        problems = verify_manifest(ckpt_dir, manifest, checksums)
        result = VerificationResult(ckpt_dir, tuple(problems), has_manifest=True, checksums=checksums)
        self._results[key] = (signature, result)
        return result

    def first_report(self, result: VerificationResult) -> bool:
        """Return True the first time ``result`` is passed, so a broken folder is logged once."""
        if id(result) in self._reported:
            return False
        self._reported.add(id(result))
        return True

    def forget_missing(self, existing: set[pathlib.Path]) -> None:
        """Drop results of folders that are not in ``existing`` any more."""
        for key in [key for key in self._results if key[0] not in existing]:
            del self._results[key]
        live = {id(result) for _signature, result in self._results.values()}
        self._reported &= live


def recover_first_valid(
    candidates: Sequence[Checkpoint],
    load: Callable[[Checkpoint], None],
    strict: bool = False,
) -> Checkpoint | None:
    """Load the first candidate that loads, skipping broken ones with a warning.

    Parameters
    ----------
    candidates : sequence of Checkpoint
        Checkpoints, most important first.
    load : callable
        Loads one checkpoint, raising on failure (``Checkpointer.load_checkpoint``).
    strict : bool, optional
        If True, the first failure is raised instead of trying the next
        candidate.

    Returns
    -------
    Checkpoint or None
        The loaded checkpoint, or None when ``candidates`` is empty.

    Raises
    ------
    CorruptCheckpointError
        In strict mode when the most important candidate fails, otherwise
        when every candidate fails. The message names each one and why.
    MissingRecoverableError, MissingHookError
        At once, because they come from the recipe and every candidate would
        fail the same way.
    """
    failures: list[str] = []
    for checkpoint in candidates:
        try:
            load(checkpoint)
        except _RECIPE_ERRORS:
            raise
        except Exception as error:  # any failure to load marks this checkpoint unusable
            reason = _reason(error)
            if strict:
                raise CorruptCheckpointError(
                    f"Cannot recover from checkpoint {checkpoint.path}: {reason}. "
                    "Strict recovery is on, so no older checkpoint is tried; turn "
                    "strict_recovery off to fall back to the next valid one."
                ) from error
            logger.warning(
                "Skipping checkpoint %s, it cannot be loaded: %s. Trying the next one.",
                checkpoint.path,
                reason,
            )
            failures.append(f"{checkpoint.path} ({reason})")
            continue
        if failures:
            logger.warning(
                "Recovered from %s after skipping %d broken checkpoint(s); they are kept "
                "on disk for inspection and retention does not delete them",
                checkpoint.path,
                len(failures),
            )
        return checkpoint
    if failures:
        raise CorruptCheckpointError(
            f"No checkpoint could be loaded, every candidate failed verification or "
            f"loading: {'; '.join(failures)}. If the files are broken, move those folders "
            "elsewhere to start from scratch; if every load fails the same way, the "
            "recipe no longer matches the checkpoints (for keys prefixed 'module.' by "
            "DDP, load with the 'ddp' keymap)."
        )
    return None


def check_weights_only_loadable(path: pathlib.Path, recoverable: str) -> None:
    """Check that a file written by ``torch.save`` loads with weights-only loading.

    Only the pickled object structure is read: the file is opened with
    ``mmap=True``, so tensor data stays on disk and the check costs little
    even for large files. Files that are not ``torch.save`` zip archives
    (text written by a custom saver, folders) are not checked.

    Raises
    ------
    UnsafeCheckpointFileError
        Naming the recoverable, the type weights-only loading rejects and
        how to convert it.
    """
    if not _is_torch_zip_file(path):
        return
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointFileError(
            f"The save hook of recoverable {recoverable!r} wrote {path.name} with "
            f"objects that weights-only loading rejects ({_unpickler_reason(error)}), "
            "so the checkpoint would fail to load. Convert them before saving: "
            "NumPy scalars and arrays with .item() or torch.as_tensor(), "
            "pathlib.Path with str(), OmegaConf containers with "
            "OmegaConf.to_container(cfg, resolve=True). Or, if you trust the type, "
            "allow it with torch.serialization.add_safe_globals([...]) in both the "
            "saving and the loading process."
        ) from error


def _problems_of_recoverables(names: list[Any], files: dict[str, Any]) -> list[FileProblem]:
    problems = []
    for name in names:
        filename = f"{name}{PARAMFILE_EXT}"
        in_folder = f"{filename}/"
        if filename in files or any(str(key).startswith(in_folder) for key in files):
            continue
        problems.append(FileProblem(METAFNAME, f"a manifest entry for {filename}", "none"))
    return problems


def _verify_file(ckpt_dir: pathlib.Path, relative: Any, record: Any, checksums: bool) -> FileProblem | None:
    if not isinstance(relative, str) or not isinstance(record, dict):
        return FileProblem(METAFNAME, "a size and checksum per file", f"a malformed entry for {relative!r}")
    path = ckpt_dir / relative
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return FileProblem(relative, "a file", "no file (missing)")
    except OSError as error:
        return FileProblem(relative, "a readable file", f"an error ({error.strerror})")
    expected_size = record.get("size")
    if size != expected_size:
        found = "0 bytes (zero-length)" if size == 0 else f"{size} bytes"
        if isinstance(expected_size, int) and 0 < size < expected_size:
            found += " (truncated)"
        return FileProblem(relative, f"{expected_size} bytes", found)
    if not checksums:
        return None
    expected_checksum = record.get("xxh3_64")
    try:
        checksum = file_checksum(path)
    except OSError as error:
        return FileProblem(relative, "a readable file", f"a read error ({error.strerror})")
    if checksum != expected_checksum:
        return FileProblem(
            relative, f"XXH3-64 checksum {expected_checksum}", f"{checksum} (contents altered)"
        )
    return None


def _read_manifest(ckpt_dir: pathlib.Path) -> tuple[dict[str, Any] | None, FileProblem | None]:
    try:
        text = (ckpt_dir / METAFNAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, FileProblem(METAFNAME, "a meta file", "no file (missing)")
    except (OSError, UnicodeDecodeError) as error:
        return None, FileProblem(METAFNAME, "a readable meta file", f"an unreadable file ({error})")
    try:
        raw_meta = parse_meta(text)
    except ValueError as error:
        return None, FileProblem(METAFNAME, "a YAML mapping", f"garbage ({_first_line(str(error))})")
    _meta, manifest = split_manifest(raw_meta)
    return manifest, None


def _files_signature(ckpt_dir: pathlib.Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    files = manifest.get("files")
    if not isinstance(files, dict):
        return ()
    signature = []
    for relative in sorted(str(key) for key in files):
        try:
            stat = os.stat(ckpt_dir / relative)
        except OSError:
            signature.append((relative, None))
            continue
        signature.append((relative, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
    return tuple(signature)


def _is_torch_zip_file(path: pathlib.Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        return False


def _unpickler_reason(error: BaseException) -> str:
    for line in str(error).splitlines():
        if "Unsupported global" in line or "WeightsUnpickler error" in line:
            return line.strip()
    return _first_line(str(error))


def _reason(error: BaseException) -> str:
    """Return the error on one line, cut to a length that fits a log line."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()).rstrip(".")
    if len(text) > _MAX_REASON_CHARS:
        text = text[: _MAX_REASON_CHARS - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else ""
