"""Case 8: two gloo processes of one run save checkpoints together.

Each save gives exactly one checkpoint folder, each file is written once, and
no process returns from the save before the checkpoint is complete.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

RUN = textwrap.dedent(
    """
    import json, os, pathlib, sys
    import torch
    import torch.distributed as dist
    from recoverkit import Checkpointer
    from recoverkit.hooks import torch_save
    from recoverkit.storage.integrity import verify_checkpoint_dir

    rank, world_dir = int(sys.argv[1]), pathlib.Path(sys.argv[2])
    dist.init_process_group("gloo", init_method=f"file://{world_dir / 'store'}", rank=rank, world_size=2)
    checkpoints_dir = world_dir / "ckpts"
    writes = world_dir / "writes.log"

    def logged_save(obj, path):
        torch_save(obj, path)
        if rank == 0:
            with open(writes, "a") as handle:
                handle.write(f"{rank} {pathlib.Path(path).name}\\n")

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    checkpointer = Checkpointer(checkpoints_dir)
    checkpointer.add_recoverable("model", model, custom_save_hook=logged_save)
    seen = []
    for step in range(3):
        with torch.no_grad():
            model.weight.fill_(float(step))
        checkpointer.save_checkpoint(meta={"step": step})
        # Right after the save returns, on every rank, the checkpoint must be complete.
        found = [c for c in checkpointer.list_checkpoints() if c.meta["step"] == step]
        complete = len(found) == 1 and verify_checkpoint_dir(found[0].path).ok and verify_checkpoint_dir(found[0].path).has_manifest
        seen.append({"step": step, "found": len(found), "complete": complete})
    (world_dir / f"rank{rank}.json").write_text(json.dumps(seen))
    dist.barrier()
    dist.destroy_process_group()
    """
)


def test_two_ranks_save_one_folder_each(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    processes = [
        subprocess.Popen([sys.executable, str(script), str(rank), str(tmp_path)], stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)
    ]
    errors = [process.communicate(timeout=300)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors

    folders = sorted(path.name for path in (tmp_path / "ckpts").iterdir() if path.name.startswith("CKPT+"))
    hidden = [path.name for path in (tmp_path / "ckpts").iterdir() if path.name.startswith((".tmp", ".trash"))]
    writes = (tmp_path / "writes.log").read_text().splitlines()
    assert len(folders) == 3
    assert hidden == []
    assert writes == ["0 model.ckpt"] * 3
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert seen == [{"step": step, "found": 1, "complete": True} for step in range(3)], rank
