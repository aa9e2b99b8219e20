"""One rank of the two-process checkpointing test, on the gloo backend.

Run as ``python distributed_worker.py RANK WORLD_SIZE INIT_FILE CHECKPOINTS_DIR RESULT_FILE``.
The rank saves and recovers with a shared checkpoints folder and writes what
it observed to RESULT_FILE as JSON, for the test to compare between ranks.
"""

import datetime
import json
import os
import sys


def hidden_folders(checkpoints_dir):
    names = os.listdir(checkpoints_dir)
    return sorted(name for name in names if name.startswith(".") and os.path.isdir(os.path.join(checkpoints_dir, name)))


def run(rank, world_size, init_file, checkpoints_dir, result_file):
    import torch
    import torch.distributed as dist

    import recoverkit.checkpointer
    import recoverkit.hooks.torch_hooks
    from recoverkit import Checkpointer, mark_as_loader, mark_as_saver, register_checkpoint_hooks

    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=120),
    )
    calls = {"torch_save_writes": 0, "every_rank_saver": 0, "deletes": 0}

    real_save_file = recoverkit.hooks.torch_hooks.save_torch_file
    real_delete = recoverkit.checkpointer.remove_dir_out_of_sight

    def counting_save_file(*args, **kwargs):
        calls["torch_save_writes"] += 1
        return real_save_file(*args, **kwargs)

    def counting_delete(*args, **kwargs):
        calls["deletes"] += 1
        return real_delete(*args, **kwargs)

    recoverkit.hooks.torch_hooks.save_torch_file = counting_save_file
    recoverkit.checkpointer.remove_dir_out_of_sight = counting_delete

    @register_checkpoint_hooks(save_on_main_only=False)
    class GatheredState:
        """A saver that every rank must enter, as one that gathers shards does."""

        def __init__(self):
            self.loaded = None

        @mark_as_saver
        def save(self, path):
            calls["every_rank_saver"] += 1
            gathered = [None] * world_size
            dist.all_gather_object(gathered, f"rank {rank}")
            if rank == 0:
                with open(path, "w", encoding="utf-8") as handle:
                    json.dump(gathered, handle)

        @mark_as_loader
        def load(self, path, end_of_epoch):
            with open(path, encoding="utf-8") as handle:
                self.loaded = json.load(handle)

    model = torch.nn.Linear(2, 2)
    gathered = GatheredState()
    checkpointer = Checkpointer(checkpoints_dir, {"model": model, "gathered": gathered})

    result = {"returned": [], "listed_after_save": [], "hidden_after_save": []}
    for k in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(float(10 * k + rank))  # rank 0's values are the saved ones
            model.bias.fill_(float(10 * k + rank))
        returned = checkpointer.save_checkpoint(meta={"k": k})
        result["returned"].append(None if returned is None else returned.meta["k"])
        result["listed_after_save"].append(sorted(c.meta["k"] for c in checkpointer.list_checkpoints()))
        result["hidden_after_save"].append(hidden_folders(checkpoints_dir))

    with torch.no_grad():
        model.weight.fill_(40.0 + rank)
        model.bias.fill_(40.0 + rank)
    checkpointer.save_and_keep_only(meta={"k": 4}, num_to_keep=2)
    result["listed_after_keep_only"] = sorted(c.meta["k"] for c in checkpointer.list_checkpoints())
    result["folders_after_keep_only"] = sorted(name for name in os.listdir(checkpoints_dir) if name.startswith("CKPT+"))

    with torch.no_grad():
        model.weight.fill_(-1.0)
        model.bias.fill_(-1.0)
    recovered = checkpointer.recover_if_possible()
    result["recovered_k"] = recovered.meta["k"]
    result["weight"] = model.weight.unique().tolist()
    result["bias"] = model.bias.unique().tolist()
    result["gathered"] = gathered.loaded
    result["calls"] = dict(calls)

    # A save hook that fails on rank 1 only: both ranks raise, none hangs.
    def fail_on_rank_one(obj, path):
        if rank == 1:
            raise OSError(28, "No space left on device (injected)")

    checkpointer.add_recoverable("flaky", object(), custom_save_hook=fail_on_rank_one, custom_load_hook=lambda obj, path: None)
    try:
        checkpointer.save_checkpoint(meta={"k": 5})
        result["failed_save_error"] = None
    except Exception as error:  # the test compares the type and message per rank
        result["failed_save_error"] = f"{type(error).__name__}: {error}"
    del checkpointer.recoverables["flaky"]
    dist.barrier()
    result["listed_after_failed_save"] = sorted(c.meta["k"] for c in checkpointer.list_checkpoints())
    result["hidden_after_failed_save"] = hidden_folders(checkpoints_dir)

    dist.barrier()
    dist.destroy_process_group()
    with open(result_file, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
