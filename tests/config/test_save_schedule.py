"""SaveSchedule: the triggers that a runner checks."""

from __future__ import annotations

import signal

import pytest

from recoverkit.config import SaveSchedule


def test_epoch_trigger() -> None:
    schedule = SaveSchedule(every_n_epochs=3)

    assert [epoch for epoch in range(1, 10) if schedule.should_save_at_epoch_end(epoch)] == [3, 6, 9]


def test_epoch_trigger_disabled() -> None:
    assert SaveSchedule(every_n_epochs=None).should_save_at_epoch_end(1) is False


def test_step_trigger() -> None:
    schedule = SaveSchedule(every_n_steps=50)

    assert [step for step in (0, 49, 50, 99, 100) if schedule.should_save_at_step(step)] == [50, 100]


def test_step_trigger_disabled_by_default() -> None:
    assert SaveSchedule().should_save_at_step(1000) is False


def test_time_trigger() -> None:
    schedule = SaveSchedule(every_n_minutes=2)

    assert schedule.should_save_by_time(last_save_monotonic=10.0, now=129.9) is False
    assert schedule.should_save_by_time(last_save_monotonic=10.0, now=130.0) is True


def test_time_trigger_disabled_by_default() -> None:
    assert SaveSchedule().should_save_by_time(last_save_monotonic=0.0, now=1e9) is False


def test_signal_numbers() -> None:
    schedule = SaveSchedule(signals=("SIGTERM", "int"))

    assert schedule.signal_numbers() == [signal.SIGTERM, signal.SIGINT]


@pytest.mark.parametrize(
    "kwargs",
    [{"every_n_epochs": 0}, {"every_n_steps": -5}, {"every_n_minutes": -1.0}, {"every_n_epochs": 1.5}, {"signals": ("SIGNOPE",)}],
)
def test_invalid_schedule(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SaveSchedule(**kwargs)
