"""Tests of ``recoverkit plot`` through the click entry point."""

from __future__ import annotations

import json
import sys

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_png(run, checkpoints_dir, tmp_path):
    out = tmp_path / "curve.png"
    result = run("plot", checkpoints_dir, "--key", "valid_loss", "--key", "accuracy", "--min-key", "valid_loss", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert "6 checkpoints over epoch, 2 kept by retention" in result.stdout


def test_plot_marks_retained_points(run, checkpoints_dir, tmp_path):
    out = tmp_path / "curve.svg"
    result = run("plot", checkpoints_dir, "--key", "valid_loss", "--min-key", "valid_loss", "--out", out, "--json")
    assert result.exit_code == 0
    points = json.loads(result.stdout)["points"]
    assert [point["x"] for point in points] == [1, 2, 3, 4, 5, 6]
    assert [point["action"] for point in points] == ["delete", "delete", "delete", "keep", "delete", "keep"]
    assert points[3]["reasons"] == ["top 1 by lowest valid_loss"]
    assert out.read_text().lstrip().startswith("<?xml")


def test_plot_over_time(run, checkpoints_dir, tmp_path):
    result = run("plot", checkpoints_dir, "--key", "valid_loss", "--x", "time", "--out", tmp_path / "t.png", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["x"] == "time"


def test_plot_unknown_key_exits_2(run, checkpoints_dir, tmp_path):
    result = run("plot", checkpoints_dir, "--key", "wer", "--out", tmp_path / "c.png")
    assert result.exit_code == 2
    assert "No checkpoint has a numeric meta value 'wer' (--key)" in result.stderr
    assert "accuracy, epoch, valid_loss" in result.stderr


def test_plot_missing_step_exits_2(run, checkpoints_dir, tmp_path):
    result = run("plot", checkpoints_dir, "--key", "valid_loss", "--x", "step", "--out", tmp_path / "c.png")
    assert result.exit_code == 2
    assert "'step' (--x)" in result.stderr


def test_plot_bad_extension_exits_2(run, checkpoints_dir, tmp_path):
    result = run("plot", checkpoints_dir, "--key", "valid_loss", "--out", tmp_path / "c.jpeg")
    assert result.exit_code == 2
    assert "must end in .png, .svg or .pdf" in result.stderr


def test_plot_missing_folder_exits_2(run, tmp_path):
    result = run("plot", tmp_path / "nope", "--key", "valid_loss", "--out", tmp_path / "c.png")
    assert result.exit_code == 2


def test_plot_empty_folder_exits_1(run, empty_dir, tmp_path):
    result = run("plot", empty_dir, "--key", "valid_loss", "--out", tmp_path / "c.png")
    assert result.exit_code == 1
    assert "nothing to plot" in result.stderr


def test_plot_marks_broken_checkpoint(run, checkpoints_dir, tmp_path, truncate_file):
    truncate_file(checkpoints_dir / "CKPT+epoch-2" / "model.ckpt")
    result = run("plot", checkpoints_dir, "--key", "valid_loss", "--out", tmp_path / "c.png", "--json")
    assert result.exit_code == 0
    point = json.loads(result.stdout)["points"][1]
    assert point["action"] == "leave"
    assert point["reasons"][0].startswith("broken")


def test_plot_without_matplotlib_exits_1(run, checkpoints_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "c.png"
    result = run("plot", checkpoints_dir, "--key", "valid_loss", "--out", out)
    assert result.exit_code == 1
    assert "needs matplotlib" in result.stderr
    assert "pip install 'recoverkit[plot]'" in result.stderr
    assert not out.exists()
