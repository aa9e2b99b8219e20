"""Averaging checkpoints: time and peak resident memory, measured in a subprocess."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

from benchmarks.common import MIB, Row, Sizes, child_environment

# Runs in fresh interpreters so that earlier benchmarks leave no memory
# behind. The "write" run writes the checkpoints. The "average" run resets the
# kernel's peak-RSS counter (VmHWM, through /proc/self/clear_refs), averages,
# and reads the peak.
_CHILD = r"""
import gc, json, sys, time
import torch
from benchmarks.common import build_model, state_bytes
from recoverkit import Checkpointer, average_checkpoints

mode, layers, rows, columns, count, folder = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field + " missing from /proc/self/status")

if mode == "write":
    model = build_model(layers, rows, columns)
    model.register_buffer("counter", torch.tensor(0, dtype=torch.int64))
    checkpointer = Checkpointer(folder, {"model": model}, verify_files=False)
    for index in range(count):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(1.0)
            model.counter.fill_(index)
        checkpointer.save_checkpoint(name=f"avg-{index:02d}")
    json.dump({"one_state": state_bytes(model.state_dict())}, sys.stdout)
    sys.exit(0)

checkpoints = Checkpointer(folder, verify_files=False).find_checkpoints(max_num_checkpoints=count)
gc.collect()
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
start = time.perf_counter()
averaged = average_checkpoints(checkpoints, "model")
seconds = time.perf_counter() - start
peak = status("VmHWM")
counter = averaged["counter"]
expected_first = sum(range(1, count + 1)) / count
mean_error = float((averaged["0.weight"] - build_model(layers, rows, columns).state_dict()["0.weight"] - expected_first).abs().max())
del averaged
gc.collect()
start = time.perf_counter()
for checkpoint in checkpoints:
    torch.load(checkpoint.paramfiles["model"], weights_only=True)
load_seconds = time.perf_counter() - start
json.dump({
    "peak_extra": peak - before,
    "seconds": seconds,
    "load_seconds": load_seconds,
    "counter": int(counter),
    "counter_dtype": str(counter.dtype),
    "mean_error": mean_error,
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
        arguments = [str(sizes.average_layers), str(sizes.rows), str(sizes.columns), str(count), str(folder)]
        result = {}
        # Writing and averaging run in separate processes, so memory the
        # writer freed but the allocator kept does not hide the averaging peak.
        for mode in ("write", "average"):
            completed = subprocess.run(
                [sys.executable, "-c", _CHILD, mode, *arguments],
                capture_output=True, text=True, cwd=repo_root, timeout=1800, env=child_environment(),
            )
            if completed.returncode != 0:
                raise RuntimeError(f"averaging benchmark ({mode}) failed:\n{completed.stderr}")
            result.update(json.loads(completed.stdout))
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
            note=f"time ratio; int64 buffer copied, not averaged: {best['counter']} ({best['counter_dtype']}); "
                 f"max error of the mean {best['mean_error']:.1e}"),
    ]
