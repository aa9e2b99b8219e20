"""The Submitit launcher configs in conf/hydra/launcher: Slurm parameters and a local sweep."""

from __future__ import annotations

import csv
import os
import pathlib
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"
RECIPE = REPO_ROOT / "recipes" / "digits" / "train.yaml"
# Generous, because several test runs may share the CPU.
SWEEP_TIMEOUT_SECONDS = 400


def compose_launcher(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        config = compose(
            config_name="config",
            overrides=[*overrides, "hydra.sweep.dir=/sweep", "hydra.job.name=digits"],
            return_hydra_config=True,
        )
    return OmegaConf.to_container(config.hydra.launcher, resolve=True)


def slurm_batch_script(launcher: dict, folder: pathlib.Path) -> str:
    """Return the sbatch script Submitit writes for ``launcher``, as Hydra's Slurm launcher sets it up."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    parameters = dict(launcher)
    parameters.pop("_target_")
    parameters.pop("submitit_folder")
    executor = submitit.AutoExecutor(
        folder=folder, cluster="slurm", slurm_max_num_timeout=parameters.pop("max_num_timeout")
    )
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{key if key in shared else f"slurm_{key}": value for key, value in parameters.items()}
    )
    assert executor._executor.max_num_timeout == 20
    return executor._executor._make_submission_file_text("python job.py", "test")


def test_slurm_launcher_config_builds_batch_script(tmp_path, monkeypatch):
    # Submitit's Slurm executor only checks that srun exists; this one is never run.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_srun = fake_bin / "srun"
    fake_srun.write_text("#!/bin/sh\nexit 1\n")
    fake_srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    launcher = compose_launcher(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    assert launcher["_target_"].endswith("SlurmLauncher")
    script = slurm_batch_script(launcher, tmp_path / "submitit")

    assert "#SBATCH --partition=gpu" in script
    assert "#SBATCH --time=240" in script
    assert "#SBATCH --signal=USR2@120" in script
    assert "#SBATCH --cpus-per-task=4" in script
    assert "#SBATCH --open-mode=append" in script


def test_local_launcher_config_composes():
    launcher = compose_launcher(["hydra/launcher=local"])
    assert launcher["_target_"].endswith("LocalLauncher")
    assert launcher["submitit_folder"] == "/sweep/.submitit/%j"
    assert launcher["timeout_min"] == 60


def test_local_launcher_runs_sweep(tmp_path):
    command = [
        sys.executable,
        "-m",
        "recoverkit",
        "run",
        str(RECIPE),
        "-m",
        "hydra/launcher=local",
        "epochs=1",
        "seed=1,2",
        "--output-root",
        str(tmp_path),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SWEEP_TIMEOUT_SECONDS,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in finished.stdout + finished.stderr

    sweep_dir = tmp_path / "digits"
    for job in ("epochs=1,seed=1", "epochs=1,seed=2"):
        assert (sweep_dir / job / "results.json").is_file(), job
    job_logs = sorted(sweep_dir.glob(".submitit/*/*_log.out"))
    assert len(job_logs) == 2

    tables = list((sweep_dir / "sweeps").glob("*.csv"))
    assert len(tables) == 1
    with open(tables[0], encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["overrides"] for row in rows) == ["epochs=1 seed=1", "epochs=1 seed=2"]
    assert [row["status"] for row in rows] == ["finished", "finished"]
    for row in rows:
        assert float(row["best"]) > 0.0, row
