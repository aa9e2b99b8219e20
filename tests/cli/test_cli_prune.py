"""Tests of ``recoverkit prune`` through the click entry point."""

from __future__ import annotations

import json
import subprocess
import sys


def _actions(result) -> dict[str, tuple[str, list[str]]]:
    data = json.loads(result.stdout)
    return {item["name"]: (item["action"], item["reasons"]) for item in data["checkpoints"]}


def _remaining(folder) -> set[str]:
    return {path.name for path in folder.iterdir() if path.name.startswith("CKPT+")}


def test_prune_dry_run_deletes_nothing(run, checkpoints_dir):
    result = run("prune", checkpoints_dir, "--keep", "1", "--min-key", "valid_loss")
    assert result.exit_code == 0, result.output
    assert len(_remaining(checkpoints_dir)) == 6
    assert "Dry run: would delete 4 of 6 checkpoints" in result.stdout


def test_prune_reasons_name_the_rule(run, checkpoints_dir):
    result = run("prune", checkpoints_dir, "--keep", "1", "--min-key", "valid_loss", "--json")
    actions = _actions(result)
    assert actions["CKPT+epoch-6"] == ("keep", ["top 1 by ckpt_recency"])
    assert actions["CKPT+epoch-4"] == ("keep", ["top 1 by lowest valid_loss"])
    assert [name for name, (action, _) in actions.items() if action == "delete"] == [
        "CKPT+epoch-5",
        "CKPT+epoch-3",
        "CKPT+epoch-2",
        "CKPT+epoch-1",
    ]


def test_prune_table_shows_reason(run, checkpoints_dir):
    result = run("prune", checkpoints_dir, "--keep", "1", "--max-key", "accuracy")
    row = next(line for line in result.stdout.splitlines() if "CKPT+epoch-6" in line)
    assert row.split()[0] == "keep"
    assert "top 1 by highest accuracy" in row


def test_prune_keep_every_n_epochs(run, checkpoints_dir):
    result = run("prune", checkpoints_dir, "--keep", "1", "--keep-every-n-epochs", "2", "--json")
    actions = _actions(result)
    assert actions["CKPT+epoch-2"] == ("keep", ["every 2 epochs (epoch 2)"])
    assert actions["CKPT+epoch-4"] == ("keep", ["every 2 epochs (epoch 4)"])
    assert actions["CKPT+epoch-6"] == ("keep", ["every 2 epochs (epoch 6)"])
    # Protected checkpoints take no place among the kept ones, so the newest rule keeps epoch 5.
    assert actions["CKPT+epoch-5"] == ("keep", ["top 1 by ckpt_recency"])
    assert actions["CKPT+epoch-3"] == ("delete", [])
    assert actions["CKPT+epoch-1"] == ("delete", [])


def test_prune_yes_deletes_planned(run, checkpoints_dir):
    result = run("prune", checkpoints_dir, "--keep", "2", "--min-key", "valid_loss", "--yes")
    assert result.exit_code == 0, result.output
    # Epochs 3 and 5 tie on valid_loss; the newer one ranks first.
    assert _remaining(checkpoints_dir) == {"CKPT+epoch-6", "CKPT+epoch-5", "CKPT+epoch-4"}
    assert "Deleted 3 of 6 checkpoints." in result.stdout


def test_prune_leaves_speechbrain_folder(run, checkpoints_dir, add_speechbrain_checkpoint):
    add_speechbrain_checkpoint(checkpoints_dir)
    result = run("prune", checkpoints_dir, "--keep", "1", "--yes", "--json")
    assert result.exit_code == 0
    action, reasons = _actions(result)["CKPT+sb"]
    assert action == "leave"
    assert "never deleted" in reasons[0]
    assert _remaining(checkpoints_dir) == {"CKPT+epoch-6", "CKPT+sb"}


def test_prune_leaves_broken_checkpoint(run, checkpoints_dir, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-2" / "model.ckpt")
    result = run("prune", checkpoints_dir, "--keep", "1", "--yes", "--json")
    assert result.exit_code == 0
    action, reasons = _actions(result)["CKPT+epoch-2"]
    assert action == "leave"
    assert reasons[0].startswith("broken, left on disk: model.ckpt")
    assert _remaining(checkpoints_dir) == {"CKPT+epoch-6", "CKPT+epoch-2"}


def test_prune_ignores_garbage_meta_folder(run, checkpoints_dir):
    (checkpoints_dir / "CKPT+epoch-1" / "CKPT.yaml").write_text("[[[")
    result = run("prune", checkpoints_dir, "--keep", "1", "--yes")
    assert result.exit_code == 0
    assert _remaining(checkpoints_dir) == {"CKPT+epoch-6", "CKPT+epoch-1"}


def test_prune_requires_keep(run, checkpoints_dir):
    result = run("prune", checkpoints_dir)
    assert result.exit_code == 2
    assert "--keep" in result.stderr


def test_prune_keep_zero_without_protection_is_rejected(run, checkpoints_dir):
    result = run("prune", checkpoints_dir, "--keep", "0", "--yes")
    assert result.exit_code == 2
    assert "Invalid retention options" in result.stderr
    assert len(_remaining(checkpoints_dir)) == 6


def test_prune_missing_folder_exits_2(run, tmp_path):
    result = run("prune", tmp_path / "nope", "--keep", "1")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_prune_empty_folder(run, empty_dir):
    result = run("prune", empty_dir, "--keep", "1", "--yes")
    assert result.exit_code == 0
    assert "nothing to prune" in result.stdout


def test_prune_locked_folder_exits_1(run, checkpoints_dir):
    holder_code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(checkpoints_dir / ".recoverkit.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = run("prune", checkpoints_dir, "--keep", "1", "--yes")
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert result.exit_code == 1
    assert "Nothing was deleted" in result.stderr
    assert "in use by another process" in result.stderr
    assert len(_remaining(checkpoints_dir)) == 6
