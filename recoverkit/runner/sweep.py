"""Sweeps: one run per combination of override values, each in its own folder.

Hydra recipes sweep through Hydra's multirun, so any Hydra launcher works
(``hydra/launcher=...``; the in-process BasicLauncher by default).
HyperPyYAML recipes have no Hydra config, so their overrides are expanded
here with Hydra's override parser into the same combinations, and the jobs
run one after another. Either way a job's folder is the one a single run
with the same overrides uses, a finished job (its ``results.json`` exists)
is skipped, and an unfinished one resumes from its own checkpoints.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import pathlib
import time
from collections.abc import Sequence
from typing import Any

from recoverkit.errors import TrainingInterruptedError
from recoverkit.runner.output import recipe_name, run_dirname, run_output_dir
from recoverkit.runner.recipe import hydra_quoted, is_hyperpyyaml
from recoverkit.runner.run import run_recipe

__all__ = ["expand_sweep", "run_sweep", "sweep_table_rows", "write_sweep_table"]

logger = logging.getLogger(__name__)

_RESOLVER = "recoverkit_run_dirname"


def expand_sweep(overrides: Sequence[str]) -> list[list[str]]:
    """Expand sweep overrides such as ``lr=0.1,0.01`` into one override list per job.

    Uses Hydra's override grammar, so ``choice(...)``, ``range(...)`` and
    quoting work as in a Hydra multirun.

    Example
    -------
    >>> expand_sweep(["lr=0.1,0.01", "seed=1"])
    [['lr=0.1', 'seed=1'], ['lr=0.01', 'seed=1']]
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    choices: list[list[str]] = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        choices.append([f"{key}={value}" for value in values])
    return [list(combination) for combination in itertools.product(*choices)]


def run_sweep(
    recipe_path: str | pathlib.Path,
    overrides: Sequence[str],
    output_root: str | pathlib.Path = "outputs",
) -> list[dict[str, Any]]:
    """Run every job of a sweep, then print and save a table of their best validation metric.

    Returns
    -------
    list of dict
        One row per job: ``overrides``, ``status`` (``finished``,
        ``skipped``, ``failed`` or ``not run``), ``monitor``, ``best``,
        ``best_epoch`` and ``output_dir``.

    Raises
    ------
    TrainingInterruptedError
        If a signal stopped a job. Jobs after it did not run; rerunning the
        sweep skips the finished jobs and resumes the stopped one.
    RecoverkitError
        If a job failed; the table is still printed and saved first.
    """
    path = pathlib.Path(recipe_path)
    if is_hyperpyyaml(path):
        outcomes = _run_jobs_in_order(path, expand_sweep(overrides), output_root)
    else:
        outcomes = _run_hydra_multirun(path, overrides, output_root)
    rows = sweep_table_rows(outcomes, output_root, path)
    table_path = pathlib.Path(output_root) / recipe_name(path) / "sweeps" / f"{run_dirname(overrides)}.csv"
    write_sweep_table(rows, table_path)
    _print_table(rows, table_path)
    for outcome in outcomes:
        if isinstance(outcome.get("error"), TrainingInterruptedError):
            raise outcome["error"]
    failed = [outcome for outcome in outcomes if outcome.get("error") is not None]
    if failed:
        from recoverkit.errors import RecoverkitError

        raise RecoverkitError(
            f"{len(failed)} of {len(outcomes)} sweep jobs failed; the first failed with: "
            f"{failed[0]['error']!r}. Fix the cause and rerun the sweep: finished jobs are skipped."
        )
    return rows


def _run_jobs_in_order(path: pathlib.Path, jobs: list[list[str]], output_root: str | pathlib.Path) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    interrupted = False
    for job in jobs:
        if interrupted:
            outcomes.append({"overrides": job, "results": None, "error": None})
            continue
        logger.info("Sweep job %d of %d: %s", len(outcomes) + 1, len(jobs), " ".join(job))
        outcome = {"overrides": job, "results": None, "error": None}
        try:
            outcome["results"] = run_recipe(path, job, output_root)
        except TrainingInterruptedError as error:
            outcome["error"] = error
            interrupted = True
        except Exception as error:  # reported in the table, then raised after the sweep
            logger.exception("Sweep job %s failed", " ".join(job))
            outcome["error"] = error
        outcomes.append(outcome)
    return outcomes


def _run_hydra_multirun(path: pathlib.Path, overrides: Sequence[str], output_root: str | pathlib.Path) -> list[dict[str, Any]]:
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    from recoverkit.config.hydra_frontend import BUILTIN_CONF_DIR
    from recoverkit.runner.recipe import load_recipe_config
    from recoverkit.runner.run import run_loaded_recipe, skip_if_finished

    recipe_path = path.resolve()
    OmegaConf.register_new_resolver(_RESOLVER, lambda task: run_dirname([str(item) for item in task]), replace=True)
    state: dict[str, Any] = {"interrupted": None}
    outcomes: list[dict[str, Any]] = []

    def job(config: Any) -> dict[str, Any]:
        job_overrides = [str(item) for item in HydraConfig.get().overrides.task]
        outcome: dict[str, Any] = {"overrides": job_overrides, "results": None, "error": None}
        outcomes.append(outcome)
        if state["interrupted"] is not None:
            return outcome
        output_dir = run_output_dir(output_root, recipe_path, job_overrides).resolve()
        finished = skip_if_finished(output_dir)
        if finished is not None:
            outcome["results"] = finished
            return outcome
        started = time.monotonic()
        output_dir.mkdir(parents=True, exist_ok=True)
        with open_dict(config):
            config.output_dir = str(output_dir)
        try:
            recipe = load_recipe_config(config, recipe_path, job_overrides, output_dir)
            outcome["results"] = run_loaded_recipe(recipe, started)
        except TrainingInterruptedError as error:
            outcome["error"] = error
            state["interrupted"] = error
        except Exception as error:  # reported in the table, then raised after the sweep
            logger.exception("Sweep job %s failed", " ".join(job_overrides))
            outcome["error"] = error
        return outcome

    sweep_dir = (pathlib.Path(output_root) / recipe_name(recipe_path)).resolve()
    hydra_overrides = [
        f"hydra.sweep.dir={hydra_quoted(str(sweep_dir))}",
        # Quoted, because the override grammar does not take a nested interpolation bare.
        f"hydra.sweep.subdir='${{{_RESOLVER}:${{hydra.overrides.task}}}}'",
        "hydra.job.chdir=False",
        # Leave logging as the caller set it up (stderr for the CLI): Hydra's
        # default sends log lines to stdout, mixed with the results table.
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]
    search_path = create_config_search_path(str(recipe_path.parent))
    if BUILTIN_CONF_DIR.is_dir():
        search_path.append("recoverkit", f"file://{BUILTIN_CONF_DIR}", anchor=SearchPathQuery(provider="main"))
    GlobalHydra.instance().clear()
    try:
        hydra = Hydra.create_main_hydra2(task_name=recipe_name(recipe_path), config_search_path=search_path)
        job_returns = hydra.multirun(
            config_name=recipe_path.stem,
            task_function=job,
            overrides=[*hydra_overrides, *overrides],
        )
    finally:
        GlobalHydra.instance().clear()
    if not outcomes:
        # Launchers such as Submitit run the jobs in other processes, so their
        # outcomes come back as the jobs' return values instead.
        outcomes = [job_return.return_value for batch in job_returns for job_return in batch]
    return outcomes


def sweep_table_rows(outcomes: list[dict[str, Any]], output_root: str | pathlib.Path, recipe_path: pathlib.Path) -> list[dict[str, Any]]:
    """Turn job outcomes into table rows with each job's best monitored validation metric."""
    rows = []
    for outcome in outcomes:
        results = outcome.get("results")
        row: dict[str, Any] = {
            "overrides": " ".join(outcome["overrides"]),
            "status": _status(outcome),
            "monitor": "",
            "best": math.nan,
            "best_epoch": "",
            "output_dir": str(run_output_dir(output_root, recipe_path, outcome["overrides"])),
        }
        best = (results or {}).get("best_epoch")
        if best:
            monitor = results.get("monitor", "")
            row.update(monitor=monitor, best=best.get(monitor, math.nan), best_epoch=best.get("epoch", ""))
        rows.append(row)
    return rows


def _status(outcome: dict[str, Any]) -> str:
    error = outcome.get("error")
    if isinstance(error, TrainingInterruptedError):
        return "interrupted"
    if error is not None:
        return "failed"
    results = outcome.get("results")
    if results is None:
        return "not run"
    return "skipped" if results.get("skipped") else "finished"


def write_sweep_table(rows: list[dict[str, Any]], path: pathlib.Path) -> None:
    """Write the sweep table as CSV to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["overrides", "status", "monitor", "best", "best_epoch", "output_dir"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _print_table(rows: list[dict[str, Any]], table_path: pathlib.Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Sweep results (saved to {table_path})")
    for column in ("overrides", "status", "monitor", "best", "best epoch"):
        table.add_column(column)
    for row in rows:
        best = "" if isinstance(row["best"], float) and math.isnan(row["best"]) else f"{row['best']:.4f}"
        table.add_row(row["overrides"], row["status"], row["monitor"], best, str(row["best_epoch"]))
    Console().print(table)
