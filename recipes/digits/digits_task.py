"""Model, data and metric of the digits recipe: 8x8 handwritten digits from scikit-learn."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

SPLITS = ("train", "valid", "test")


def load_split(split: str, split_seed: int = 0, valid_fraction: float = 0.15, test_fraction: float = 0.2) -> TensorDataset:
    """Return one split of scikit-learn's digits set as a TensorDataset of (image, label).

    The set ships inside scikit-learn, so nothing is downloaded. Pixels are
    scaled from 0..16 to 0..1 and flattened to 64 features. The split is a
    fixed permutation drawn from ``split_seed``, so every split is the same
    on every run regardless of the training seed.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown digits split {split!r}; expected one of {SPLITS}.")
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split_seed))
    num_test = int(len(labels) * test_fraction)
    num_valid = int(len(labels) * valid_fraction)
    bounds = {
        "test": (0, num_test),
        "valid": (num_test, num_test + num_valid),
        "train": (num_test + num_valid, len(labels)),
    }
    start, stop = bounds[split]
    chosen = order[start:stop]
    return TensorDataset(images[chosen], labels[chosen])


class DigitsMLP(torch.nn.Sequential):
    """A two-layer perceptron with dropout over the 64 pixels."""

    def __init__(self, hidden: int = 128, dropout: float = 0.1, num_classes: int = 10) -> None:
        super().__init__(
            torch.nn.Linear(64, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, num_classes),
        )


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Return the fraction of samples whose highest logit is the true label."""
    return (logits.argmax(dim=-1) == labels).float().mean()
