"""Training overhead of checkpointing: the digits recipe with and without checkpoints."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import Row, Sizes, child_environment

_EPOCH_LINE = re.compile(r"Epoch \d+ done in ([0-9.]+) s")
_NO_CHECKPOINTS = ["schedule.every_n_epochs=null", "schedule.every_n_steps=null", "schedule.every_n_minutes=null"]
_EVERY_10_STEPS = ["schedule.every_n_epochs=1", "schedule.every_n_steps=10", "schedule.every_n_minutes=null"]
CONFIGS = {
    "none": _NO_CHECKPOINTS,
    "async": _EVERY_10_STEPS + ["checkpointer.async_save=true"],
    "sync": _EVERY_10_STEPS + ["checkpointer.async_save=false"],
}


def _recipe() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parent.parent / "recipes" / "digits" / "train.yaml"


def _train(config: list[str], epochs: int, output_root: pathlib.Path) -> tuple[float, float]:
    """Run the recipe once; return the summed epoch times and the wall time."""
    shutil.rmtree(output_root, ignore_errors=True)
    command = [sys.executable, "-m", "recoverkit", "run", "-o", str(output_root), str(_recipe()),
               f"epochs={epochs}", *config]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=child_environment())
    wall = time.perf_counter() - start
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-3000:]}")
    epoch_seconds = [float(value) for value in _EPOCH_LINE.findall(output)]
    if len(epoch_seconds) != epochs:
        raise RuntimeError(f"expected {epochs} 'Epoch N done in' lines, found {len(epoch_seconds)}:\n{output[-3000:]}")
    shutil.rmtree(output_root, ignore_errors=True)
    return sum(epoch_seconds), wall


def run(sizes: Sizes, scratch: pathlib.Path, log: Any) -> list[Row]:
    """Train the digits recipe without checkpoints, and with one every 10 steps."""
    if not _recipe().exists():
        log("training: recipes/digits/train.yaml not found, skipped")
        return []
    epochs = 15 if sizes.listing_checkpoints >= 10_000 else 5
    best: dict[str, tuple[float, float]] = {}
    for attempt in range(sizes.repeat):
        # Interleaved, so a burst of load from other processes hits all three.
        for name, config in CONFIGS.items():
            log(f"training: digits recipe, {epochs} epochs, checkpoints {name}, run {attempt + 1} of {sizes.repeat}")
            train, wall = _train(config, epochs, scratch / f"digits-{name}")
            previous = best.get(name)
            if previous is None or wall < previous[1]:
                best[name] = (train, wall)
    # The runner logs epoch times to 0.1 s, too coarse for epochs that take a
    # fraction of a second, so the ratio uses the whole run's wall time, which
    # includes start-up (imports, data loading) and the final test.
    baseline = f"no checkpoints: run {best['none'][1]:.2f} s (epochs {best['none'][0]:.1f} s)"
    rows = []
    for name, case, target in (
        ("async", "digits, checkpoint every 10 steps, async_save=True", 0.05),
        ("sync", "digits, checkpoint every 10 steps, synchronous", None),
    ):
        rows.append(Row(
            "training", case, f"run {best[name][1]:.2f} s (epochs {best[name][0]:.1f} s)", baseline,
            best[name][1] / best["none"][1] - 1, target, higher_is_better=False,
            note="added run time, start-up included",
        ))
    return rows
