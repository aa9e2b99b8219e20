"""The generic recipe runner behind ``recoverkit run``.

It builds what a recipe declares, recovers from the run's newest checkpoint,
trains with checkpoints on a schedule, and tests. Resuming is exact on CPU:
a run killed at any moment and started again with the same command ends
with the same parameters as a run that was never interrupted.
"""

from recoverkit.runner.data import EpochBatchSampler, build_loader, epoch_seed
from recoverkit.runner.engine import Trainer, is_end_of_epoch, resume_order, retention_keeping_newest
from recoverkit.runner.loop_state import LoopState
from recoverkit.runner.output import recipe_name, run_dirname, run_output_dir
from recoverkit.runner.recipe import Recipe, load_recipe, load_recipe_config, seed_everything
from recoverkit.runner.results import RESULTS_FILENAME, read_results
from recoverkit.runner.run import run_loaded_recipe, run_recipe
from recoverkit.runner.signals import SignalWatcher
from recoverkit.runner.sweep import expand_sweep, run_sweep
from recoverkit.runner.task import AveragingSpec, TrainingTask

__all__ = [
    "RESULTS_FILENAME",
    "AveragingSpec",
    "EpochBatchSampler",
    "LoopState",
    "Recipe",
    "SignalWatcher",
    "Trainer",
    "TrainingTask",
    "build_loader",
    "epoch_seed",
    "expand_sweep",
    "is_end_of_epoch",
    "load_recipe",
    "load_recipe_config",
    "read_results",
    "recipe_name",
    "resume_order",
    "retention_keeping_newest",
    "run_dirname",
    "run_loaded_recipe",
    "run_output_dir",
    "run_recipe",
    "run_sweep",
    "seed_everything",
]
