"""Runs of the installed ``recoverkit`` console script in a child process."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

# The console script sits next to the interpreter that runs the tests.
SCRIPT = pathlib.Path(sys.executable).with_name("recoverkit")


def _run_script(*args: object) -> subprocess.CompletedProcess:
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "250"}
    return subprocess.run(
        [str(SCRIPT), *(str(arg) for arg in args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )


@pytest.fixture(scope="module", autouse=True)
def _script_installed():
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the package with pip install -e ."


def test_script_ls_json(checkpoints_dir):
    completed = _run_script("ls", checkpoints_dir, "--json")
    assert completed.returncode == 0, completed.stderr
    assert [row["name"] for row in json.loads(completed.stdout)][:2] == ["CKPT+epoch-6", "CKPT+epoch-5"]


def test_script_broken_checkpoint_exits_1(checkpoints_dir, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-1" / "model.ckpt")
    broken = _run_script("inspect", checkpoints_dir / "CKPT+epoch-1")
    assert broken.returncode == 1
    assert "truncated" in broken.stderr
    assert "Traceback" not in broken.stderr
