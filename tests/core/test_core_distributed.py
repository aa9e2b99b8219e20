"""Two processes on the gloo backend save into one checkpoints folder."""

import json
import os
import pathlib
import subprocess
import sys

WORKER = pathlib.Path(__file__).with_name("distributed_worker.py")
TIMEOUT_S = 300  # generous, so a loaded CI machine does not fail the test


def run_two_ranks(tmp_path):
    """Run both ranks of the worker and return what each observed."""
    checkpoints_dir = tmp_path / "ckpts"
    init_file = tmp_path / "init"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    processes = []
    for rank in range(2):
        command = [
            sys.executable,
            str(WORKER),
            str(rank),
            "2",
            str(init_file),
            str(checkpoints_dir),
            str(tmp_path / f"rank{rank}.json"),
        ]
        # stderr goes to a file, so a full pipe cannot block a rank.
        with open(tmp_path / f"rank{rank}.stderr", "w", encoding="utf-8") as stderr:
            processes.append(subprocess.Popen(command, env=env, stderr=stderr))
    errors = []
    for rank, process in enumerate(processes):
        try:
            process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        if process.returncode != 0:
            stderr = (tmp_path / f"rank{rank}.stderr").read_text(encoding="utf-8")
            errors.append(f"rank {rank} exited with {process.returncode}:\n{stderr[-3000:]}")
    assert not errors, "\n".join(errors)
    return [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]


def test_two_ranks_share_checkpoints(tmp_path):
    rank0, rank1 = run_two_ranks(tmp_path)

    # Rank 0 returns each Checkpoint, rank 1 None.
    assert rank0["returned"] == [1, 2, 3]
    assert rank1["returned"] == [None, None, None]

    # One folder per save, published before save_checkpoint returns anywhere.
    for result in (rank0, rank1):
        assert result["listed_after_save"] == [[1], [1, 2], [1, 2, 3]]
    # Only rank 0's view is checked: rank 0 may already be creating the
    # hidden folder of the next save while rank 1 lists.
    assert rank0["hidden_after_save"] == [[], [], []]

    # Default savers run on rank 0 only; save_on_main_only=False ones on both.
    assert rank0["calls"]["torch_save_writes"] == 4
    assert rank1["calls"]["torch_save_writes"] == 0
    assert rank0["calls"]["every_rank_saver"] == 4
    assert rank1["calls"]["every_rank_saver"] == 4

    # Only rank 0 deletes, and both ranks see the result.
    assert rank0["calls"]["deletes"] == 2
    assert rank1["calls"]["deletes"] == 0
    for result in (rank0, rank1):
        assert result["listed_after_keep_only"] == [3, 4]
        assert len(result["folders_after_keep_only"]) == 2

    # Every rank loads the values rank 0 saved.
    for result in (rank0, rank1):
        assert result["recovered_k"] == 4
        assert result["weight"] == [40.0]
        assert result["bias"] == [40.0]
        assert result["gathered"] == ["rank 0", "rank 1"]


def test_failure_on_one_rank_raises_everywhere(tmp_path):
    rank0, rank1 = run_two_ranks(tmp_path)

    assert rank1["failed_save_error"].startswith("OSError:")
    assert rank0["failed_save_error"].startswith("RecoverkitError:")
    assert "rank 1" in rank0["failed_save_error"]
    assert "No space left on device" in rank0["failed_save_error"]
    for result in (rank0, rank1):
        assert result["listed_after_failed_save"] == [3, 4]
    assert rank0["hidden_after_failed_save"] == []
