"""A digits run killed with SIGKILL again and again ends exactly where an uninterrupted run does."""

from __future__ import annotations

import pathlib
import random
import time

import torch

from runner_helpers import (
    DIGITS_RECIPE,
    SIGKILL,
    SMALL_DIGITS,
    Interruptible,
    comparable,
    final_parameters,
    read_results,
    run_command,
    run_to_end,
    tmp_dir_appeared,
)
from recoverkit.runner import run_output_dir


def _line_cue(text: str, rng: random.Random):
    """Fire a little after a line containing ``text`` appears."""
    state = {"seen_at": None}
    delay = rng.uniform(0.0, 0.05)

    def cue(line: str | None) -> bool:
        if state["seen_at"] is None and line is not None and text in line:
            state["seen_at"] = time.monotonic()
        return state["seen_at"] is not None and time.monotonic() - state["seen_at"] >= delay

    return cue


def _mid_save_cue(after_text: str, checkpoints_dir: pathlib.Path):
    """Fire while a save is in progress, once a line containing ``after_text`` appeared."""
    state = {"armed": False}

    def cue(line: str | None) -> bool:
        if line is not None and after_text in line:
            state["armed"] = True
        return state["armed"] and tmp_dir_appeared(checkpoints_dir)

    return cue


def test_sigkill_resume_bit_identical(tmp_path: pathlib.Path) -> None:
    rng = random.Random(20261204)
    plain_root = tmp_path / "plain"
    killed_root = tmp_path / "killed"
    killed_dir = run_output_dir(killed_root, DIGITS_RECIPE, SMALL_DIGITS)
    checkpoints_dir = killed_dir / "checkpoints"

    code, output = run_to_end(run_command(DIGITS_RECIPE, SMALL_DIGITS, plain_root), tmp_path)
    assert code == 0, output
    assert "test_accuracy" in output

    cues = [
        ("mid-epoch", _line_cue("Epoch 1 batch 8/", rng)),
        ("mid-save", _mid_save_cue("Epoch 2/3", checkpoints_dir)),
        ("mid-epoch", _line_cue("Epoch 2 batch 13/", rng)),
        ("mid-save", _mid_save_cue("Epoch 3/3", checkpoints_dir)),
    ]
    kills: list[str] = []
    resumed_lines: list[str] = []
    for kind, cue in cues:
        attempt = Interruptible(run_command(DIGITS_RECIPE, SMALL_DIGITS, killed_root), tmp_path)
        fired = attempt.watch(cue)
        if fired:
            attempt.send(SIGKILL)
        code = attempt.finish()
        resumed_lines += [line for line in attempt.lines if "Resuming from checkpoint" in line]
        if not fired:
            assert code == 0, attempt.output
            break
        assert code == -SIGKILL, attempt.output
        kills.append(kind)
    else:
        code, output = run_to_end(run_command(DIGITS_RECIPE, SMALL_DIGITS, killed_root), tmp_path)
        assert code == 0, output
        resumed_lines += [line for line in output.splitlines() if "Resuming from checkpoint" in line]

    assert kills.count("mid-epoch") >= 2, kills
    assert "mid-save" in kills, kills
    assert len(resumed_lines) >= len(kills), resumed_lines

    plain_dir = run_output_dir(plain_root, DIGITS_RECIPE, SMALL_DIGITS)
    expected = final_parameters(plain_dir)
    actual = final_parameters(killed_dir)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), name
    assert comparable(read_results(killed_dir)) == comparable(read_results(plain_dir))
