"""Model, data and metric of the sine-forecast recipe: predict the next sample of a noisy sine wave."""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset


def make_sine_windows(num_sequences: int, window: int, seed: int, noise: float = 0.05) -> TensorDataset:
    """Generate ``num_sequences`` noisy sine windows and the sample that follows each.

    Frequencies (0.1 to 0.5 radians per step) and phases are drawn from a
    generator seeded with ``seed``, so each split is the same on every run.
    Inputs have shape ``(window, 1)``; targets are scalars.
    """
    generator = torch.Generator().manual_seed(seed)
    frequency = 0.1 + 0.4 * torch.rand(num_sequences, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(num_sequences, 1, generator=generator)
    steps = torch.arange(window + 1, dtype=torch.float32)
    waves = torch.sin(frequency * steps + phase)
    waves = waves + noise * torch.randn(num_sequences, window + 1, generator=generator)
    return TensorDataset(waves[:, :window].unsqueeze(-1), waves[:, window])


class GRUForecaster(torch.nn.Module):
    """A one-layer GRU over the window, then a linear read-out of its last hidden state."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(input_size=1, hidden_size=hidden, batch_first=True)
        self.readout = torch.nn.Linear(hidden, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        _outputs, last_hidden = self.gru(windows)
        return self.readout(last_hidden[-1]).squeeze(-1)


def mean_absolute_error(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return the mean absolute difference between predictions and targets."""
    return (predictions - targets).abs().mean()
