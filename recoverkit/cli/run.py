"""The ``recoverkit run`` command: train a recipe, or sweep it with ``-m``."""

from __future__ import annotations

import logging
import signal
import sys

import click

from recoverkit.errors import RecoverkitError, TrainingInterruptedError

__all__ = ["run"]

logger = logging.getLogger(__name__)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option(
    "-m",
    "--multirun",
    is_flag=True,
    help="Run one job per combination of comma-separated override values (a sweep).",
)
@click.option(
    "-o",
    "--output-root",
    default="outputs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder that contains one folder per recipe, and in it one folder per set of overrides.",
)
def run(recipe: str, overrides: tuple[str, ...], multirun: bool, output_root: str) -> None:
    """Train RECIPE (a Hydra or HyperPyYAML file), resuming from its checkpoints if any.

    OVERRIDES are key=value pairs such as optimizer.lr=0.01 seed=2. Each
    distinct set of overrides trains in its own folder, so running the same
    command again resumes it. On SIGTERM or SIGINT the run saves a
    checkpoint and exits with code 128 + the signal number.
    """
    from recoverkit.distributed import is_main_process
    from recoverkit.runner import run_recipe, run_sweep

    _show_runner_logs()
    try:
        if multirun:
            run_sweep(recipe, overrides, output_root)
        else:
            results = run_recipe(recipe, overrides, output_root)
            if is_main_process():  # under torchrun, every rank has the same results
                _print_results(results)
    except TrainingInterruptedError as error:
        click.echo(f"Interrupted: {error}", err=True)
        sys.exit(128 + error.signal_number)
    except KeyboardInterrupt:
        # Outside the training loop (loading, final evaluation) nothing is saved on Ctrl-C.
        click.echo(
            "Interrupted: stopped on SIGINT outside training, without saving a checkpoint. "
            "Run the same command again to resume from the newest complete checkpoint.",
            err=True,
        )
        sys.exit(128 + signal.SIGINT)
    except RecoverkitError as error:  # bad recipe or config, folder in use, failed sweep jobs
        raise click.ClickException(str(error)) from error


def _show_runner_logs() -> None:
    """Show the INFO lines of the runner and of Hydra's launchers unless -v asked for more already.

    They are the progress, the resume point and, in sweeps, the jobs a
    launcher starts and its output folder.
    """
    for name in ("recoverkit.runner", "hydra", "hydra_plugins"):
        named_logger = logging.getLogger(name)
        if named_logger.getEffectiveLevel() > logging.INFO:
            named_logger.setLevel(logging.INFO)


def _print_results(results: dict) -> None:
    for key, value in (results.get("final") or {}).items():
        click.echo(f"{key}: {value:.4f}")
    for key, value in (results.get("averaged") or {}).items():
        click.echo(f"averaged {key}: {value:.4f}")
    click.echo(f"results: {results['output_dir']}/results.json")
