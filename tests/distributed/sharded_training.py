"""A small FSDP2 training run for the multi-process tests; run it as a script on each rank.

Every rank trains its shards of a small MLP for ``--steps`` optimizer steps
on data drawn from (step, rank), saving a sharded checkpoint every
``--save-every`` steps. With ``--kill-at-step`` each rank kills itself with
SIGKILL when it reaches that step, before training on it. At the end rank 0
writes the gathered parameters and optimizer state to ``--result``, for the
test to compare.
"""

from __future__ import annotations

import argparse
import os
import signal

import torch

from recoverkit import Checkpointer, EpochCounter
from recoverkit.hooks.sharded import ShardedState
from recoverkit.runner.distributed import PerRankRNGState, destroy_distributed, init_distributed

IN_FEATURES = 16
OUT_FEATURES = 4


def build_model() -> torch.nn.Sequential:
    """Build the MLP with the same initial parameters on every rank."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(IN_FEATURES, 32),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, OUT_FEATURES),
    )


def shard_model(model: torch.nn.Sequential) -> None:
    """Shard every linear layer and the root over all ranks with FSDP2."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (int(os.environ["WORLD_SIZE"]),))
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def batch_for(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the batch of ``rank`` at ``step``, the same on every run."""
    generator = torch.Generator().manual_seed(1000 * step + rank)
    inputs = torch.randn(8, IN_FEATURES, generator=generator)
    targets = torch.randn(8, OUT_FEATURES, generator=generator)
    return inputs, targets


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--init-method", required=True)
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--save-every", type=int, default=2)
    parser.add_argument("--kill-at-step", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    init_distributed(backend="gloo", init_method=arguments.init_method, timeout_seconds=300)
    rank = int(os.environ["RANK"])

    model = build_model()
    shard_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    steps = EpochCounter(arguments.steps)
    # Each rank draws its own dropout masks, so the generators differ by rank.
    torch.manual_seed(100 + rank)
    checkpointer = Checkpointer(
        arguments.checkpoints,
        {"trainer": ShardedState(model, optimizer), "steps": steps, "rng": PerRankRNGState()},
    )
    checkpointer.recover_if_possible()

    for step in steps:
        if step == arguments.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        inputs, targets = batch_for(step, rank)
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % arguments.save_every == 0:
            checkpointer.save_and_keep_only(meta={"step": step}, num_to_keep=2)

    write_result(model, optimizer, arguments.result)
    destroy_distributed()


def write_result(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: str) -> None:
    """Gather the full parameters and optimizer state; rank 0 writes them to ``path``."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True)
    model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
    if int(os.environ["RANK"]) == 0:
        torch.save({"model": model_state, "optimizer": optimizer_state}, path)


if __name__ == "__main__":
    main()
