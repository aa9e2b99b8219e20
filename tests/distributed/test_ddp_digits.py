"""The digits recipe trained with DDP by 2 gloo processes under torchrun, killed and resumed."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import torch

pytestmark = pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="reads /proc to find torchrun's workers")

from recoverkit.runner.output import run_output_dir

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "recipes" / "digits" / "train.yaml"
OVERRIDES = ["epochs=2", "schedule.every_n_steps=5", "average.count=1"]
# Generous, because several test runs may share the CPU.
RUN_TIMEOUT_SECONDS = 300


def torchrun_command(output_root: pathlib.Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "recoverkit",
        "run",
        str(RECIPE),
        *OVERRIDES,
        "--output-root",
        str(output_root),
    ]


def start_run(output_root: pathlib.Path, log_path: pathlib.Path) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            torchrun_command(output_root),
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def run_to_end(output_root: pathlib.Path, log_path: pathlib.Path) -> int:
    process = start_run(output_root, log_path)
    try:
        return process.wait(timeout=RUN_TIMEOUT_SECONDS)
    finally:
        kill_session(process)


def interrupt_after_next_checkpoint(
    output_root: pathlib.Path, log_path: pathlib.Path, signal_number: int
) -> int:
    """Start a run and interrupt it once a new checkpoint appears.

    SIGKILL goes to torchrun and every worker at once, like a crashed node.
    Other signals go to torchrun alone, which forwards them to the workers,
    like Slurm stopping a job.
    """
    checkpoints_dir = run_output_dir(output_root, RECIPE, OVERRIDES) / "checkpoints"
    before = set(checkpoints_dir.glob("CKPT+*"))
    process = start_run(output_root, log_path)
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if set(checkpoints_dir.glob("CKPT+*")) - before:
                targets = [process.pid]
                if signal_number == signal.SIGKILL:
                    targets += child_pids(process.pid)
                for pid in targets:
                    send_signal(pid, signal_number)
                break
            time.sleep(0.05)
        return process.wait(timeout=RUN_TIMEOUT_SECONDS)
    finally:
        kill_session(process)


def child_pids(parent_pid: int) -> list[int]:
    """Return the ids of the direct children of ``parent_pid``, read from /proc."""
    children = []
    for stat_path in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue  # the process exited while we listed it
        # The command name in parentheses may contain spaces; the parent id is
        # the second field after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent_pid:
            children.append(int(stat_path.parent.name))
    return children


def send_signal(pid: int, signal_number: int) -> None:
    try:
        os.kill(pid, signal_number)
    except ProcessLookupError:
        pass  # it exited on its own


def kill_session(process: subprocess.Popen) -> None:
    """Kill torchrun and its workers, which torchrun starts in sessions of their own."""
    for pid in [*child_pids(process.pid), process.pid]:
        send_signal(pid, signal.SIGKILL)
    process.wait()


def final_parameters(output_root: pathlib.Path) -> tuple[dict, dict[str, torch.Tensor]]:
    run_dir = run_output_dir(output_root, RECIPE, OVERRIDES)
    results = json.loads((run_dir / "results.json").read_text())
    model_file = run_dir / "checkpoints" / results["checkpoint"] / "model.ckpt"
    return results, torch.load(model_file, weights_only=True)


def check_same_training(expected_root: pathlib.Path, resumed_root: pathlib.Path) -> None:
    expected_results, expected_model = final_parameters(expected_root)
    resumed_results, resumed_model = final_parameters(resumed_root)
    assert resumed_results["steps"] == expected_results["steps"]
    assert resumed_results["final"] == expected_results["final"]
    assert set(resumed_model) == set(expected_model)
    for name, value in expected_model.items():
        assert torch.equal(resumed_model[name], value), name


def run_interrupted(tmp_path: pathlib.Path, signals: list[int]) -> pathlib.Path:
    root = tmp_path / "interrupted"
    log_path = tmp_path / "interrupted.log"
    for signal_number in signals:
        code = interrupt_after_next_checkpoint(root, log_path, signal_number)
        assert code != 0, log_path.read_text()
    code = run_to_end(root, log_path)
    assert code == 0, log_path.read_text()[-5000:]
    assert "Resuming from checkpoint" in log_path.read_text()
    return root


def test_ddp_run_killed_resumes_bit_identically(tmp_path):
    straight_log = tmp_path / "straight.log"
    assert run_to_end(tmp_path / "straight", straight_log) == 0, straight_log.read_text()[-5000:]
    assert "Joined process group as rank 1 of 2" in straight_log.read_text()

    interrupted = run_interrupted(tmp_path, [signal.SIGKILL])
    check_same_training(tmp_path / "straight", interrupted)


@pytest.mark.slow
def test_ddp_run_stopped_by_signals_resumes(tmp_path):
    straight_log = tmp_path / "straight.log"
    assert run_to_end(tmp_path / "straight", straight_log) == 0, straight_log.read_text()[-5000:]

    interrupted = run_interrupted(tmp_path, [signal.SIGTERM, signal.SIGKILL, signal.SIGTERM])
    check_same_training(tmp_path / "straight", interrupted)
