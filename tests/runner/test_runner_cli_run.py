"""The run command: exit codes and messages on a second Ctrl-C, where logs go, what the default verbosity shows."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from runner_helpers import DIGITS_RECIPE, PROCESS_TIMEOUT


def test_sweep_logs_go_to_stderr(tmp_path: pathlib.Path) -> None:
    argv = [
        sys.executable, "-m", "recoverkit", "run", str(DIGITS_RECIPE), "-m",
        "epochs=1", "data.batch_size=256", "seed=1,2", "-o", str(tmp_path),
    ]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)

    assert done.returncode == 0, done.stderr
    assert "Sweep results" in done.stdout
    assert "recoverkit.runner" not in done.stdout
    assert "Epoch 1/1" not in done.stdout
    assert "Epoch 1/1" in done.stderr
