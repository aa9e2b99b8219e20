"""Running ``recoverkit run`` in a subprocess and interrupting it on cue."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS_RECIPE = REPO_ROOT / "recipes" / "digits" / "train.yaml"
# Small enough for a test: 3 short epochs, a save every 5 steps, a log line per batch.
SMALL_DIGITS = (
    "epochs=3",
    "data.batch_size=64",
    "schedule.every_n_steps=5",
    "schedule.every_n_minutes=null",
    "trainer.log_every_n_batches=1",
    "average.count=2",
)
PROCESS_TIMEOUT = 300.0


def run_command(recipe: pathlib.Path, overrides: Sequence[str], output_root: pathlib.Path, multirun: bool = False) -> list[str]:
    """Return the argv of ``recoverkit -v run`` for a recipe."""
    argv = [sys.executable, "-m", "recoverkit", "-v", "run", str(recipe), *overrides, "-o", str(output_root)]
    if multirun:
        argv.append("-m")
    return argv


class Interruptible:
    """A subprocess whose merged output is read line by line, so a test can signal it on cue."""

    def __init__(self, argv: Sequence[str], cwd: pathlib.Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        self.process = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def watch(self, should_stop: Callable[[str | None], bool], deadline: float = PROCESS_TIMEOUT) -> bool:
        """Feed each new line (and None every millisecond) to ``should_stop``; return True when it fired.

        Returns False if the process ended first.
        """
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                line = self._queue.get(timeout=0.001)
            except queue.Empty:
                line = None
                if self.process.poll() is not None and not self._reader.is_alive() and self._queue.empty():
                    return False
            else:
                if line is None:
                    return False
                self.lines.append(line)
            if should_stop(line):
                return True
        raise TimeoutError(f"No cue within {deadline} s; output so far:\n{''.join(self.lines[-30:])}")

    def send(self, signal_number: int) -> None:
        self.process.send_signal(signal_number)

    def finish(self, timeout: float = PROCESS_TIMEOUT) -> int:
        """Wait for the process to end and collect the rest of its output; return its exit code."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=30)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def run_to_end(argv: Sequence[str], cwd: pathlib.Path) -> tuple[int, str]:
    """Run a command to its end; return its exit code and merged output."""
    done = subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return done.returncode, done.stdout + done.stderr


def read_results(run_dir: pathlib.Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def final_parameters(run_dir: pathlib.Path) -> dict[str, torch.Tensor]:
    """Return the model parameters of the checkpoint that results.json names as the final one."""
    results = read_results(run_dir)
    path = run_dir / "checkpoints" / results["checkpoint"] / "model.ckpt"
    return torch.load(path, map_location="cpu", weights_only=True)


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields of results.json that legitimately differ between runs (times, paths)."""
    ignored = {"wall_time_seconds", "train_seconds", "output_dir", "checkpoint", "averaged_checkpoints", "skipped"}
    return {key: value for key, value in results.items() if key not in ignored}


def tmp_dir_appeared(checkpoints_dir: pathlib.Path) -> bool:
    """Return True while a save is in progress (its hidden temporary folder exists)."""
    try:
        return any(entry.name.startswith(".tmp+") for entry in os.scandir(checkpoints_dir))
    except FileNotFoundError:
        return False


SIGKILL = signal.SIGKILL
SIGTERM = signal.SIGTERM
