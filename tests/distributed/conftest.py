"""Launching a script as several ranks of one gloo process group."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

# Generous, because several test runs may share the CPU; a healthy launch takes seconds.
LAUNCH_TIMEOUT_SECONDS = 240


class RankLauncher:
    """Runs ``python SCRIPT ARGS`` once per rank, as torchrun would, and keeps their output."""

    def __init__(self, work_dir: pathlib.Path) -> None:
        self.work_dir = work_dir
        self.launches = 0

    def launch(self, script: pathlib.Path, arguments: list[str], world_size: int = 2) -> list[int]:
        """Run every rank to completion and return their exit codes, rank 0 first.

        The ranks meet through a new ``file://`` rendezvous in ``work_dir``
        and get ``--init-method`` as their first argument.
        """
        self.launches += 1
        init_method = f"file://{self.work_dir / f'rendezvous-{self.launches}'}"
        processes = []
        for rank in range(world_size):
            log_path = self.work_dir / f"launch-{self.launches}-rank-{rank}.log"
            command = [sys.executable, str(script), "--init-method", init_method, *arguments]
            with open(log_path, "wb") as log:
                processes.append(
                    subprocess.Popen(
                        command,
                        env=rank_environment(rank, world_size),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            return [process.wait(timeout=LAUNCH_TIMEOUT_SECONDS) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()

    def logs(self) -> str:
        """Return the end of every rank's output, for assertion messages."""
        parts = []
        for path in sorted(self.work_dir.glob("launch-*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


def rank_environment(rank: int, world_size: int) -> dict[str, str]:
    """Return the variables torchrun sets for ``rank``, with one thread per process.

    One thread keeps the processes from fighting over the CPU, and keeps
    floating-point reductions in the same order on every run.
    """
    environment = dict(os.environ)
    environment.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        OMP_NUM_THREADS="1",
    )
    return environment


@pytest.fixture
def rank_launcher(tmp_path: pathlib.Path) -> RankLauncher:
    """A :class:`RankLauncher` that writes its rendezvous files and logs under ``tmp_path``."""
    return RankLauncher(tmp_path)
