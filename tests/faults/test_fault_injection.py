"""Fault injection: recovery returns the newest intact checkpoint after each fault.

The harness runs in its own process, because it forks a child per fault and
forking the multi-threaded pytest-xdist worker could deadlock the child.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

HARNESS = pathlib.Path(__file__).with_name("harness.py")
REPOSITORY = HARNESS.parents[2]


def run_harness(tmp_path: pathlib.Path, *arguments: str) -> dict:
    completed = subprocess.run(
        [sys.executable, str(HARNESS), "--json", "--dir", str(tmp_path), *arguments],
        capture_output=True,
        text=True,
        timeout=500,
        cwd=REPOSITORY,
    )
    assert completed.stdout, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    ("kinds", "faults"),
    [
        (["sigkill", "enospc"], 30),
        (["truncate", "bitflip", "missing-file", "meta-garbage"], 32),
    ],
    ids=["during-save", "after-save"],
)
def test_faults_lose_no_data(tmp_path, kinds, faults):
    result = run_harness(tmp_path, "--faults", str(faults), "--seed", "7", "--kinds", *kinds)
    table = result["table"]

    assert result["failures"] == []
    assert sum(row["faults"] for row in table.values()) == faults
    for kind in kinds:
        assert table[kind]["faults"] >= faults // len(kinds)
        assert table[kind]["correct"] == table[kind]["faults"]
        assert table[kind]["lost"] == 0


def test_harness_detects_loss_without_verification(tmp_path):
    # Bit flips that keep the file loadable go unnoticed without checksums, so
    # the harness must report lost data here; otherwise its check is blind.
    result = run_harness(tmp_path, "--faults", "12", "--seed", "0", "--kinds", "bitflip", "--no-verify")

    assert result["table"]["bitflip"]["lost"] >= 1
