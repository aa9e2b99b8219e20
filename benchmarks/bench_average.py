"""Averaging checkpoints: time and peak resident memory, measured in a subprocess."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

from benchmarks.common import MIB, Row, Sizes

# Runs in a fresh interpreter so that earlier benchmarks leave no memory
# behind. It writes the checkpoints, then resets the kernel's peak-RSS
# counter (VmHWM, through /proc/self/clear_refs) and averages.
_CHILD = r"""
import json, os, sys, time, pathlib
import torch
from benchmarks.common import build_model, state_bytes
from recoverkit import Checkpointer, average_checkpoints

layers, rows, columns, count, folder = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field + " missing from /proc/self/status")

model = build_model(layers, rows, columns)
model.register_buffer("counter", torch.tensor(0, dtype=torch.int64))
checkpointer = Checkpointer(folder, {"model": model}, verify_files=False)
for index in range(count):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
        model.counter.fill_(index)
    checkpointer.save_checkpoint(name=f"avg-{index:02d}")
one_state = state_bytes(model.state_dict())
checkpoints = checkpointer.find_checkpoints(max_num_checkpoints=count)
del model, checkpointer
import gc; gc.collect()

start = time.perf_counter()
for checkpoint in checkpoints:
    torch.load(checkpoint.paramfiles["model"], weights_only=True)
load_seconds = time.perf_counter() - start
gc.collect()

before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
start = time.perf_counter()
averaged = average_checkpoints(checkpoints, "model")
seconds = time.perf_counter() - start
peak = status("VmHWM")
expected_first = sum(range(1, count + 1)) / count
json.dump({
    "one_state": one_state,
    "peak_extra": peak - before,
    "seconds": seconds,
    "load_seconds": load_seconds,
    "counter": int(averaged["counter"]),
    "counter_dtype": str(averaged["counter"].dtype),
    "mean_error": float((averaged["0.weight"] - build_model(layers, rows, columns).state_dict()["0.weight"] - expected_first).abs().max()),
}, sys.stdout)
"""


def run(sizes: Sizes, scratch: pathlib.Path, log: Any) -> list[Row]:
    """Average ``sizes.averaged_checkpoints`` checkpoints in a subprocess; return the rows."""
    count = sizes.averaged_checkpoints
    repo_root = pathlib.Path(__file__).resolve().parent.parent
    best: dict[str, Any] | None = None
    for attempt in range(sizes.repeat):
        folder = scratch / f"average-{attempt}"
        log(f"averaging: {count} checkpoints of {sizes.average_layers * sizes.rows * sizes.columns * 4 / MIB:.0f} MiB, "
            f"run {attempt + 1} of {sizes.repeat}")
        completed = subprocess.run(
            [sys.executable, "-c", _CHILD, str(sizes.average_layers), str(sizes.rows), str(sizes.columns),
             str(count), str(folder)],
            capture_output=True, text=True, cwd=repo_root, timeout=1800,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"averaging benchmark failed:\n{completed.stderr}")
        result = json.loads(completed.stdout)
        if best is None or result["seconds"] < best["seconds"]:
            best = result
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    assert best is not None
    one = best["one_state"]
    return [
        Row("averaging", f"average_checkpoints, {count} checkpoints, peak memory",
            f"+{best['peak_extra'] / MIB:.0f} MiB", f"one state dict: {one / MIB:.0f} MiB",
            best["peak_extra"] / one, 2.5, higher_is_better=False, note="memory ratio"),
        Row("averaging", f"average_checkpoints, {count} checkpoints, time",
            f"{best['seconds']:.2f} s", f"torch.load of the {count} files: {best['load_seconds']:.2f} s",
            best["seconds"] / best["load_seconds"], None, higher_is_better=False,
            note=f"time ratio; int64 buffer copied from last: {best['counter']} ({best['counter_dtype']}), "
                 f"max error of the mean {best['mean_error']:.1e}"),
    ]
