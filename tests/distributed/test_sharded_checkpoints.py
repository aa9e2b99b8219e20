"""Sharded (FSDP2) checkpoints written by 2 gloo processes: exact resume and loading in 1 process."""

from __future__ import annotations

import pathlib

import pytest
import torch
import yaml

from recoverkit import Checkpointer
from recoverkit.hooks.sharded import ShardedState

TRAINING_SCRIPT = pathlib.Path(__file__).with_name("sharded_training.py")
STEPS = 6


@pytest.fixture(scope="module")
def training_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sharded_training", TRAINING_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_arguments(run_dir: pathlib.Path, kill_at_step: int = 0) -> list[str]:
    return [
        "--checkpoints",
        str(run_dir / "checkpoints"),
        "--result",
        str(run_dir / "result.pt"),
        "--steps",
        str(STEPS),
        "--save-every",
        "2",
        "--kill-at-step",
        str(kill_at_step),
    ]


# One test, because each 2-process launch costs seconds: the uninterrupted run
# is the reference for the resumed run, the subject of the layout checks, and
# the checkpoint that one process loads.
def test_fsdp_checkpoints_resume_and_reshard(rank_launcher, tmp_path, training_module):
    straight = tmp_path / "straight"
    interrupted = tmp_path / "interrupted"

    codes = rank_launcher.launch(TRAINING_SCRIPT, run_arguments(straight))
    assert codes == [0, 0], rank_launcher.logs()
    codes = rank_launcher.launch(TRAINING_SCRIPT, run_arguments(interrupted, kill_at_step=5))
    assert codes == [-9, -9], rank_launcher.logs()
    assert not (interrupted / "result.pt").exists()
    codes = rank_launcher.launch(TRAINING_SCRIPT, run_arguments(interrupted))
    assert codes == [0, 0], rank_launcher.logs()

    check_shard_layout(straight / "checkpoints")

    expected = torch.load(straight / "result.pt")
    resumed = torch.load(interrupted / "result.pt")
    for key, value in expected["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    for key, state in expected["optimizer"]["state"].items():
        assert torch.equal(resumed["optimizer"]["state"][key]["exp_avg"], state["exp_avg"]), key
        assert torch.equal(resumed["optimizer"]["state"][key]["exp_avg_sq"], state["exp_avg_sq"]), key

    # The 2-process checkpoint, loaded by this single process into an unsharded model.
    model = training_module.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    checkpointer = Checkpointer(
        straight / "checkpoints", {"trainer": ShardedState(model, optimizer)}, allow_partial_load=True
    )
    checkpoint = checkpointer.recover_if_possible()
    assert checkpoint is not None
    assert checkpoint.meta["step"] == STEPS
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected["model"][name]), name
    loaded_optimizer = ShardedState(model, optimizer).state_dict()["optimizer"]["state"]
    for key, state in expected["optimizer"]["state"].items():
        assert torch.equal(loaded_optimizer[key]["exp_avg"], state["exp_avg"]), key
        assert float(loaded_optimizer[key]["step"]) == STEPS, key


def check_shard_layout(checkpoints_dir: pathlib.Path) -> None:
    checkpoints = sorted(checkpoints_dir.glob("CKPT+*"))
    assert len(checkpoints) == 2  # save_and_keep_only kept 2 of the 3 saves
    newest = max(checkpoints, key=lambda path: yaml.safe_load((path / "CKPT.yaml").read_text())["step"])
    trainer_dir = newest / "trainer.ckpt"
    assert trainer_dir.is_dir()
    shard_files = sorted(path.name for path in trainer_dir.glob("*.distcp"))
    assert shard_files == ["__0_0.distcp", "__1_0.distcp"]
    rng_files = sorted(path.name for path in (newest / "rng.ckpt").iterdir())
    assert rng_files == ["rank-0.pt", "rank-1.pt"]
    listed = set(yaml.safe_load((newest / "CKPT.yaml").read_text())["recoverkit-files"]["files"])
    for name in ("trainer.ckpt/__0_0.distcp", "trainer.ckpt/__1_0.distcp", "trainer.ckpt/.metadata"):
        assert name in listed, name
