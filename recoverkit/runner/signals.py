"""Saving on SIGTERM and SIGINT at the next safe point instead of dying mid-step."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

__all__ = ["SignalWatcher"]

logger = logging.getLogger(__name__)


class SignalWatcher:
    """Record termination signals so the loop can save at a safe point, then stop.

    While active, the first of the watched signals only sets
    :attr:`received`; the training loop checks it after each optimizer step.
    A second SIGINT raises KeyboardInterrupt at once, so Ctrl-C pressed twice
    still stops a run that hangs. The previous handlers come back on exit.
    Outside the main thread Python cannot install handlers, so nothing is
    watched there.
    """

    def __init__(self, signals: Sequence[int]) -> None:
        self.signals = list(signals)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalWatcher:
        if threading.current_thread() is not threading.main_thread():
            if self.signals:
                logger.warning("Not in the main thread: cannot save on signals %s", self.signals)
            return self
        for number in self.signals:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        del frame
        if self.received is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            self.received = number
        logger.warning(
            "Received %s: saving a checkpoint at the next step boundary, then stopping",
            signal.Signals(number).name,
        )
