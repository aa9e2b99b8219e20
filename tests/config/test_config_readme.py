"""The YAML example of the README's config section loads and runs as written."""

from __future__ import annotations

import pathlib
import re

import pytest
import safetensors.torch
import torch

from recoverkit.config import load_checkpointer

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _readme_yaml() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Declaring checkpointing in YAML") :]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_readme_example_runs(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.yaml").write_text(_readme_yaml(), encoding="utf-8")
    (tmp_path / "pretrained").mkdir()
    safetensors.torch.save_file({"weight": torch.full((4, 16), 0.5)}, "pretrained/encoder.safetensors")

    run = load_checkpointer("train.yaml", ["retention.num_to_keep=3", "schedule.every_n_minutes=5"])
    run.apply_transfers()
    for epoch in run.epoch_counter:
        run.save_and_keep_only(meta={"epoch": epoch, "valid_loss": 1.0 / epoch})
        if epoch == 5:
            break

    assert torch.equal(run.objects["model"].weight, torch.full((4, 16), 0.5))
    assert run.schedule.signals == ("SIGTERM", "SIGINT")
    assert run.schedule.every_n_minutes == 5.0
    assert len(run.checkpointer.list_checkpoints()) == 3
    assert (tmp_path / "results" / "checkpoints").is_dir()
