"""Save, load and asynchronous-save benchmarks on a model with its Adam state."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import torch

from benchmarks.common import (
    MIB,
    Row,
    Sizes,
    Timer,
    build_adam,
    build_model,
    flush_page_cache_writes,
    remove_tree,
    state_bytes,
)
from recoverkit import Checkpointer


def _write_raw(state: Any, path: pathlib.Path) -> None:
    """Write the bytes of every tensor in ``state`` to one file and fsync it."""
    with open(path, "wb", buffering=0) as handle:
        for tensor in _tensors(state):
            view = memoryview(tensor.contiguous().numpy()).cast("B")
            while view.nbytes:
                view = view[handle.write(view):]
        os.fsync(handle.fileno())


def _tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [tensor for value in state.values() for tensor in _tensors(value)]
    if isinstance(state, (list, tuple)):
        return [tensor for value in state for tensor in _tensors(value)]
    return []


def _clone_state(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.clone()
    if isinstance(state, dict):
        return {key: _clone_state(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return [_clone_state(value) for value in state]
    return state


def run(sizes: Sizes, scratch: pathlib.Path, log: Any) -> list[Row]:
    """Measure saving, loading and asynchronous saving; return the table rows."""
    model = build_model(sizes.layers, sizes.rows, sizes.columns)
    optimizer = build_adam(model)
    recoverables = {"model": model, "optimizer": optimizer}
    total = state_bytes(model.state_dict()) + state_bytes(optimizer.state_dict())
    log(f"save/load: model {sizes.model_bytes / MIB:.0f} MiB, with Adam state {total / MIB:.0f} MiB")

    rows = _save_rows(sizes, scratch, recoverables, total, log)
    rows += _load_rows(sizes, scratch, recoverables, log)
    rows += _async_rows(sizes, scratch, recoverables, log)
    return rows


def _save_rows(sizes: Sizes, scratch: pathlib.Path, recoverables: dict[str, Any], total: int, log: Any) -> list[Row]:
    timer = Timer()
    raw_dir = scratch / "raw"
    torch_dir = scratch / "torch-save"
    for attempt in range(sizes.repeat):
        log(f"  save, run {attempt + 1} of {sizes.repeat}")

        def reset_raw() -> None:
            remove_tree(raw_dir)
            raw_dir.mkdir(parents=True)
            flush_page_cache_writes()

        timer.measure(
            "raw",
            lambda: [_write_raw(obj.state_dict(), raw_dir / name) for name, obj in recoverables.items()],
            before=reset_raw,
        )

        def reset_torch() -> None:
            remove_tree(raw_dir)
            remove_tree(torch_dir)
            torch_dir.mkdir(parents=True)
            flush_page_cache_writes()

        timer.measure(
            "torch.save",
            lambda: [torch.save(obj.state_dict(), torch_dir / f"{name}.ckpt") for name, obj in recoverables.items()],
            before=reset_torch,
        )

        checkpoints_dir = scratch / "checkpoints"

        def reset_checkpoints() -> None:
            remove_tree(torch_dir)
            remove_tree(checkpoints_dir / "CKPT+bench")
            flush_page_cache_writes()

        checkpointer = Checkpointer(checkpoints_dir, recoverables)
        timer.measure("checkpointer", lambda: checkpointer.save_checkpoint(name="bench"), before=reset_checkpoints)
    remove_tree(torch_dir)

    def rate(name: str) -> str:
        return f"{timer[name]:.2f} s ({total / timer[name] / 1e9:.2f} GB/s)"

    return [
        Row("save", "save_checkpoint, durable and atomic", rate("checkpointer"),
            f"raw bytes + fsync: {rate('raw')}", timer["raw"] / timer["checkpointer"], 0.85,
            note="throughput ratio"),
        Row("save", "save_checkpoint, durable and atomic", rate("checkpointer"),
            f"torch.save per recoverable, no fsync: {rate('torch.save')}",
            timer["torch.save"] / timer["checkpointer"], None, note="throughput ratio"),
    ]


def _load_rows(sizes: Sizes, scratch: pathlib.Path, recoverables: dict[str, Any], log: Any) -> list[Row]:
    checkpoints_dir = scratch / "checkpoints"
    files = {name: checkpoints_dir / "CKPT+bench" / f"{name}.ckpt" for name in recoverables}
    # Modules loaded with mmap keep the mapped tensors, and writing to them
    # later costs a page fault per page, so those loads go to other objects.
    mapped_model = build_model(sizes.layers, sizes.rows, sizes.columns)
    mapped = {"model": mapped_model, "optimizer": build_adam(mapped_model)}
    # Same number of tensors, 1/8 of the bytes.
    small_dir = scratch / "small-checkpoints"
    small_model = build_model(sizes.layers, sizes.rows // 8, sizes.columns)
    small = {"model": small_model, "optimizer": build_adam(small_model)}
    Checkpointer(small_dir, small).save_checkpoint(name="bench")

    timer = Timer()
    for attempt in range(sizes.repeat):
        log(f"  load, run {attempt + 1} of {sizes.repeat}")
        timer.measure("torch.load", lambda: [torch.load(path, weights_only=True) for path in files.values()])
        for label, options in (
            ("verified", {}),
            ("unverified", {"verify_files": False}),
        ):
            checkpointer = Checkpointer(checkpoints_dir, recoverables, **options)
            timer.measure(label, checkpointer.recover_if_possible)
        mapping = Checkpointer(checkpoints_dir, mapped, verify_files=False, mmap=True)
        timer.measure("mmap", mapping.recover_if_possible)
        small_checkpointer = Checkpointer(small_dir, small, verify_files=False, mmap=True)
        timer.measure("mmap small", small_checkpointer.recover_if_possible)
    remove_tree(small_dir)

    baseline = f"torch.load(weights_only=True): {timer['torch.load']:.2f} s"
    return [
        Row("load", "recover_if_possible (checksums verified)", f"{timer['verified']:.2f} s", baseline,
            timer["torch.load"] / timer["verified"], 0.9, note="speed ratio"),
        Row("load", "recover_if_possible, verify_files=False", f"{timer['unverified']:.2f} s", baseline,
            timer["torch.load"] / timer["unverified"], 0.9, note="speed ratio"),
        Row("load", "recover_if_possible, mmap=True, verify_files=False", f"{timer['mmap']:.3f} s", baseline,
            timer["torch.load"] / timer["mmap"], 0.9, note="speed ratio"),
        Row("load", "mmap recovery, full model vs 1/8 of its bytes",
            f"{timer['mmap']:.3f} s", f"{timer['mmap small']:.3f} s",
            timer["mmap"] / timer["mmap small"], 1.5, higher_is_better=False,
            note="time ratio; 1.0 = independent of size"),
    ]


def _async_rows(sizes: Sizes, scratch: pathlib.Path, recoverables: dict[str, Any], log: Any) -> list[Row]:
    checkpoints_dir = scratch / "async-checkpoints"
    timer = Timer()
    checkpointer = Checkpointer(checkpoints_dir, recoverables, async_save=True)

    def reset() -> None:
        checkpointer.wait()
        remove_tree(checkpoints_dir / "CKPT+bench")
        flush_page_cache_writes()

    for attempt in range(sizes.repeat):
        log(f"  async save, run {attempt + 1} of {sizes.repeat}")
        timer.measure(
            "clone",
            lambda: [_clone_state(obj.state_dict()) for obj in recoverables.values()],
            before=reset,
        )
        timer.measure("blocked", lambda: checkpointer.save_checkpoint(name="bench"), before=reset)
        timer.measure("background", checkpointer.wait)
    reset()
    return [
        Row("async save", "save_checkpoint(async_save=True), caller blocked",
            f"{timer['blocked']:.3f} s", f"clone() of the state: {timer['clone']:.3f} s",
            timer["blocked"] / timer["clone"], 1.5, higher_is_better=False, note="time ratio"),
    ]
