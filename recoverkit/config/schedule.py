"""When a run saves: the save schedule that a runner consults."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

__all__ = ["SaveSchedule"]


@dataclass(frozen=True)
class SaveSchedule:
    """The points of a run at which a checkpoint is saved.

    A runner calls :meth:`should_save_at_epoch_end` after each epoch,
    :meth:`should_save_at_step` after each optimizer step and
    :meth:`should_save_by_time` inside an epoch, and installs handlers for
    :attr:`signals` that save and then exit.

    Parameters
    ----------
    every_n_epochs : int, optional
        Save at the end of every n-th epoch; None never does.
    every_n_steps : int, optional
        Save after every n-th optimizer step, counted over the whole run;
        None never does.
    every_n_minutes : float, optional
        Save once this many minutes have passed since the last save; None
        never does.
    signals : tuple of str
        Names of the signals, such as ``"SIGTERM"``, on which the run saves
        and exits.

    Raises
    ------
    ValueError
        If an interval is not positive or a signal name is unknown.

    Example
    -------
    >>> schedule = SaveSchedule(every_n_epochs=2, every_n_minutes=0.5)
    >>> schedule.should_save_at_epoch_end(3), schedule.should_save_at_epoch_end(4)
    (False, True)
    >>> schedule.should_save_by_time(last_save_monotonic=100.0, now=131.0)
    True
    """

    every_n_epochs: int | None = 1
    every_n_steps: int | None = None
    every_n_minutes: float | None = None
    signals: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signals", tuple(self.signals))
        for name in ("every_n_epochs", "every_n_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
        minutes = self.every_n_minutes
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0):
            raise ValueError(f"every_n_minutes must be a positive number or None, got {minutes!r}.")
        for name in self.signals:
            signal_from_name(name)

    def should_save_at_epoch_end(self, epoch: int) -> bool:
        """Return True if the run saves at the end of epoch ``epoch`` (counted from 1)."""
        return self.every_n_epochs is not None and epoch % self.every_n_epochs == 0

    def should_save_at_step(self, step: int) -> bool:
        """Return True if the run saves after optimizer step ``step`` (counted from 1 over the run)."""
        return self.every_n_steps is not None and step > 0 and step % self.every_n_steps == 0

    def should_save_by_time(self, last_save_monotonic: float, now: float) -> bool:
        """Return True if ``every_n_minutes`` have passed since the last save.

        Parameters
        ----------
        last_save_monotonic : float
            ``time.monotonic()`` at the last save, or at the start of the run.
        now : float
            ``time.monotonic()`` now.
        """
        if self.every_n_minutes is None:
            return False
        return now - last_save_monotonic >= self.every_n_minutes * 60.0

    def signal_numbers(self) -> list[signal.Signals]:
        """Return :attr:`signals` as :class:`signal.Signals` members."""
        return [signal_from_name(name) for name in self.signals]


def signal_from_name(name: str) -> signal.Signals:
    """Return the signal called ``name`` (``SIGTERM`` or ``TERM``, any case).

    Raises
    ------
    ValueError
        If no signal has that name on this platform.
    """
    text = str(name).strip().upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(
            f"Unknown signal {name!r}. Use a name such as SIGTERM, SIGINT or SIGUSR1."
        ) from None
