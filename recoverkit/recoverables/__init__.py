"""Ready-made recoverables that most training loops need."""

from recoverkit.recoverables.epoch_counter import EpochCounter
from recoverkit.recoverables.rng import RNGState

__all__ = ["EpochCounter", "RNGState"]
