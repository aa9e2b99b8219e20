"""``ls`` and ``verify`` on one folder with every kind of entry: same states, same counts."""

from __future__ import annotations

import json

import pytest
import torch

# The state each folder must get from both commands.
EXPECTED_STATES = {
    "CKPT+epoch-1": "ok",
    "CKPT+epoch-2": "ok",
    "CKPT+epoch-3": "broken",
    "CKPT+epoch-4": "ok",
    "CKPT+epoch-5": "broken",
    "CKPT+epoch-6": "ok",
    "CKPT+meta-only": "not a checkpoint",
    "CKPT+no-meta": "not a checkpoint",
    "CKPT+sb": "unverified (no manifest)",
}


@pytest.fixture
def mixed_dir(checkpoints_dir, add_speechbrain_checkpoint, truncate_file):
    """Six recoverkit checkpoints (two broken), a SpeechBrain one and two foreign folders."""
    truncate_file(checkpoints_dir / "CKPT+epoch-3" / "model.ckpt")
    altered = checkpoints_dir / "CKPT+epoch-5" / "model.ckpt"
    data = bytearray(altered.read_bytes())
    data[-30] ^= 0xFF
    altered.write_bytes(bytes(data))
    add_speechbrain_checkpoint(checkpoints_dir, "sb")
    meta_only = checkpoints_dir / "CKPT+meta-only"
    meta_only.mkdir()
    (meta_only / "CKPT.yaml").write_text("unixtime: 1.0\nend-of-epoch: true\n")
    no_meta = checkpoints_dir / "CKPT+no-meta"
    no_meta.mkdir()
    torch.save({}, no_meta / "model.ckpt")
    return checkpoints_dir


def test_ls_states_of_each_kind(run, mixed_dir):
    result = run("ls", mixed_dir, "--json")
    states = {row["name"]: row["verification"] for row in json.loads(result.stdout)}
    assert states == EXPECTED_STATES
    assert result.exit_code == 1


def test_verify_states_of_each_kind(run, mixed_dir):
    result = run("verify", mixed_dir, "--json")
    states = {row["name"]: row["state"] for row in json.loads(result.stdout)}
    assert states == EXPECTED_STATES
    assert result.exit_code == 1


def test_ls_and_verify_count_alike(run, mixed_dir):
    expected = f"2 of 7 checkpoints in {mixed_dir} are broken"
    assert expected in run("ls", mixed_dir).stderr
    assert expected in run("verify", mixed_dir).stderr


def test_ls_table_not_a_checkpoint(run, mixed_dir):
    lines = run("ls", mixed_dir).stdout.splitlines()
    row = next(line for line in lines if line.startswith("CKPT+meta-only "))
    assert row.rstrip().endswith("not a checkpoint")


def test_verify_summary_line(run, mixed_dir):
    last_line = run("verify", mixed_dir).stdout.splitlines()[-1]
    assert last_line == (
        "5 valid, 2 broken (sizes and checksums checked): "
        "4 ok, 2 broken, 1 unverified (no manifest), 2 not a checkpoint."
    )


def test_foreign_folders_alone_exit_zero(run, empty_dir):
    (empty_dir / "CKPT+meta-only").mkdir()
    (empty_dir / "CKPT+meta-only" / "CKPT.yaml").write_text("unixtime: 1.0\n")
    (empty_dir / "CKPT+no-meta").mkdir()
    assert run("ls", empty_dir).exit_code == 0
    assert run("verify", empty_dir).exit_code == 0


@pytest.mark.parametrize("option", [("--verify", "sizes"), ("--sizes-only",)])
def test_verify_sizes_option_spellings(run, mixed_dir, option):
    result = run("verify", mixed_dir, *option, "--json")
    states = {row["name"]: row["state"] for row in json.loads(result.stdout)}
    # Comparing sizes misses the flipped byte in epoch-5 but not the truncation of epoch-3.
    assert states["CKPT+epoch-3"] == "broken"
    assert states["CKPT+epoch-5"] == "sizes ok"
