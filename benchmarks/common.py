"""Timing, sizes, result rows and machine description shared by the benchmarks."""

from __future__ import annotations

import dataclasses
import gc
import os
import pathlib
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import torch

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Sizes of the benchmark data.

    ``layers`` linear layers of ``rows`` x ``columns`` float32 weights make
    the model; Adam adds two tensors of the same size per parameter.
    """

    layers: int
    rows: int
    columns: int
    listing_checkpoints: int
    averaged_checkpoints: int
    average_layers: int
    repeat: int

    @property
    def model_bytes(self) -> int:
        return self.layers * self.rows * self.columns * 4


FULL = Sizes(layers=64, rows=2048, columns=1024, listing_checkpoints=10_000,
             averaged_checkpoints=10, average_layers=32, repeat=3)
QUICK = Sizes(layers=64, rows=256, columns=1024, listing_checkpoints=2_000,
              averaged_checkpoints=10, average_layers=8, repeat=3)


@dataclasses.dataclass
class Row:
    """One line of the result table.

    ``ratio`` is oriented so that the target reads as ``ratio >= target``
    (``higher_is_better``) or ``ratio <= target``.
    """

    section: str
    case: str
    measured: str
    baseline: str
    ratio: float
    target: float | None
    higher_is_better: bool = True
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.higher_is_better:
            return self.ratio >= self.target
        return self.ratio <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<='} {self.target:g}"


class Timer:
    """Keeps the best (smallest) duration of several runs of each named case."""

    def __init__(self) -> None:
        self.best: dict[str, float] = {}

    def measure(self, name: str, function: Callable[[], Any], before: Callable[[], Any] | None = None) -> Any:
        """Run ``before`` untimed, then time ``function``; return what it returns."""
        if before is not None:
            before()
        gc.collect()
        start = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - start
        self.best[name] = min(elapsed, self.best.get(name, float("inf")))
        return result

    def __getitem__(self, name: str) -> float:
        return self.best[name]


def child_environment() -> dict[str, str]:
    """Return the environment for benchmark subprocesses, with this process's torch thread count."""
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def flush_page_cache_writes() -> None:
    """Write back dirty pages, so a timed write does not pay for an earlier one."""
    os.sync()


def build_model(layers: int, rows: int, columns: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    for _ in range(layers):
        layer = torch.nn.Linear(columns, rows, bias=False)
        model.append(layer)
    return model


def build_adam(model: torch.nn.Module) -> torch.optim.Optimizer:
    """Return Adam after one step, so its state contains two tensors per parameter."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, 1e-3)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer


def state_bytes(state: Any) -> int:
    """Return the bytes of all tensors in a nested state dict."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(value) for value in state)
    return 0


def remove_tree(path: pathlib.Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def describe_machine(scratch: pathlib.Path) -> dict[str, str]:
    """Describe the CPU, memory, disk and software the benchmarks ran on."""
    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory_total(),
        "disk": _disk_of(scratch),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "os": f"{platform.system()} {platform.release()}",
    }
    try:
        info["load average"] = " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / MIB:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _disk_of(path: pathlib.Path) -> str:
    try:
        output = subprocess.run(
            ["df", "-hT", str(path)], capture_output=True, text=True, check=True, timeout=10
        ).stdout.splitlines()[-1].split()
        return f"{output[1]} file system on {output[0]}, {output[2]}"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"
