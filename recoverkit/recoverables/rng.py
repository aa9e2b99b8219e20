"""A recoverable for the state of every random number generator a run uses."""

from __future__ import annotations

import logging
import pathlib
import random
from typing import Any

import torch

from recoverkit.hooks.decorators import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from recoverkit.storage.torch_io import load_weights_only, save_torch_file

__all__ = ["RNGState"]

logger = logging.getLogger(__name__)


@register_checkpoint_hooks
class RNGState:
    """The states of Python's ``random``, NumPy's global generator and torch's generators.

    Saving stores the CPU generator of torch and, when CUDA is available,
    every CUDA device's generator. Loading restores all of them, so random
    draws after recovery equal those the interrupted run would have made.
    The file loads with weights-only ``torch.load``.

    Example
    -------
    >>> rng = RNGState()
    >>> state = rng.state_dict()
    >>> a = torch.rand(2)
    >>> rng.load_state_dict(state)
    >>> bool((torch.rand(2) == a).all())
    True
    """

    def state_dict(self) -> dict[str, Any]:
        """Return the current generator states as weights-only-loadable values."""
        version, internal_state, gauss_next = random.getstate()
        state: dict[str, Any] = {
            "python": {
                "version": version,
                "state": torch.tensor(internal_state, dtype=torch.int64),
                "gauss_next": gauss_next,
            },
            "torch": torch.get_rng_state(),
        }
        numpy_state = _numpy_state()
        if numpy_state is not None:
            state["numpy"] = numpy_state
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator states from :meth:`state_dict`'s output."""
        python_state = state["python"]
        random.setstate(
            (
                python_state["version"],
                tuple(int(value) for value in python_state["state"].tolist()),
                python_state["gauss_next"],
            )
        )
        torch.set_rng_state(state["torch"])
        if "numpy" in state:
            _set_numpy_state(state["numpy"])
        if "cuda" in state:
            if torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])
            else:
                logger.warning("Checkpoint has CUDA generator states, but CUDA is not available: skipped them")

    @mark_as_saver
    def _save(self, path: pathlib.Path) -> None:
        save_torch_file(self.state_dict(), path)

    @mark_as_loader
    def _recover(self, path: pathlib.Path, end_of_epoch: bool) -> None:
        del end_of_epoch
        self.load_state_dict(load_weights_only(path))


def _numpy_state() -> dict[str, Any] | None:
    try:
        import numpy
    except ImportError:
        return None
    name, keys, position, has_gauss, cached_gaussian = numpy.random.get_state()
    return {
        "name": str(name),
        "keys": torch.from_numpy(keys.astype("int64")),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    try:
        import numpy
    except ImportError:
        logger.warning("Checkpoint has a NumPy generator state, but NumPy is not installed: skipped it")
        return
    numpy.random.set_state(
        (
            state["name"],
            state["keys"].numpy().astype("uint32"),
            state["position"],
            state["has_gauss"],
            state["cached_gaussian"],
        )
    )
