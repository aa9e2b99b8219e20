"""Default and custom hooks restore the saved values."""

import logging
import random

import numpy
import pytest
import torch
from torch.optim import lr_scheduler

from recoverkit import (
    DEFAULT_LOAD_HOOKS,
    DEFAULT_SAVE_HOOKS,
    DEFAULT_TRANSFER_HOOKS,
    Checkpointer,
    EpochCounter,
    MissingHookError,
    RNGState,
    get_default_hook,
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
    torch_parameter_transfer,
    torch_recovery,
    torch_save,
)
from recoverkit import distributed


class TwoLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = torch.nn.Linear(3, 4)
        self.norm = torch.nn.BatchNorm1d(4)
        self.second = torch.nn.Linear(4, 2)


def fill_module(module, value):
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.fill_(value)


def assert_state_equal(actual, expected):
    assert actual.keys() == expected.keys()
    for key in expected:
        a, e = actual[key], expected[key]
        if isinstance(e, torch.Tensor):
            assert torch.equal(a, e), key
        elif isinstance(e, dict):
            assert_state_equal(a, e)
        elif isinstance(e, list) and e and isinstance(e[0], dict):
            assert len(a) == len(e), key
            for a_item, e_item in zip(a, e):
                assert_state_equal(a_item, e_item)
        else:
            assert a == e, key


# Modules and optimizers


def test_module_parameters_restored(tmp_path):
    model = TwoLayers()
    fill_module(model, 1.5)
    model.norm.num_batches_tracked.fill_(7)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    checkpointer.save_checkpoint()

    fill_module(model, -3.0)
    model.norm.num_batches_tracked.fill_(0)
    checkpointer.recover_if_possible()

    assert torch.equal(model.first.weight, torch.full((4, 3), 1.5))
    assert torch.equal(model.norm.running_var, torch.full((4,), 1.5))
    assert model.norm.num_batches_tracked.item() == 7


def train_steps(model, optimizer, steps):
    for step in range(steps):
        optimizer.zero_grad()
        loss = model(torch.full((2, 3), float(step + 1))).pow(2).sum()
        loss.backward()
        optimizer.step()


def test_optimizer_state_restored(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    train_steps(model, optimizer, 3)
    expected = optimizer.state_dict()
    checkpointer = Checkpointer(tmp_path, {"model": model, "optimizer": optimizer})
    checkpointer.save_checkpoint()

    new_model = torch.nn.Linear(3, 2)
    new_optimizer = torch.optim.Adam(new_model.parameters(), lr=0.5)
    Checkpointer(tmp_path, {"model": new_model, "optimizer": new_optimizer}).recover_if_possible()

    assert_state_equal(new_optimizer.state_dict(), expected)
    assert new_optimizer.param_groups[0]["lr"] == 0.01
    assert new_optimizer.state_dict()["state"][0]["step"].item() == 3.0


# Every LR scheduler


def make_scheduler(cls, optimizer):
    factories = {
        lr_scheduler.LambdaLR: lambda: cls(optimizer, lambda epoch: 0.5**epoch),
        lr_scheduler.MultiplicativeLR: lambda: cls(optimizer, lambda epoch: 0.9),
        lr_scheduler.StepLR: lambda: cls(optimizer, step_size=2, gamma=0.5),
        lr_scheduler.MultiStepLR: lambda: cls(optimizer, milestones=[1, 3], gamma=0.5),
        lr_scheduler.ConstantLR: lambda: cls(optimizer, factor=0.5, total_iters=2),
        lr_scheduler.LinearLR: lambda: cls(optimizer, start_factor=0.5, total_iters=4),
        lr_scheduler.ExponentialLR: lambda: cls(optimizer, gamma=0.9),
        lr_scheduler.PolynomialLR: lambda: cls(optimizer, total_iters=5, power=2.0),
        lr_scheduler.CosineAnnealingLR: lambda: cls(optimizer, T_max=5),
        lr_scheduler.CosineAnnealingWarmRestarts: lambda: cls(optimizer, T_0=2),
        lr_scheduler.CyclicLR: lambda: cls(optimizer, base_lr=0.01, max_lr=0.1, step_size_up=2),
        lr_scheduler.OneCycleLR: lambda: cls(optimizer, max_lr=0.1, total_steps=10),
        lr_scheduler.SequentialLR: lambda: cls(
            optimizer,
            [lr_scheduler.ConstantLR(optimizer, factor=0.5, total_iters=1), lr_scheduler.ExponentialLR(optimizer, 0.9)],
            milestones=[2],
        ),
        lr_scheduler.ChainedScheduler: lambda: cls(
            [lr_scheduler.ConstantLR(optimizer, factor=0.5, total_iters=2), lr_scheduler.ExponentialLR(optimizer, 0.9)]
        ),
        lr_scheduler.ReduceLROnPlateau: lambda: cls(optimizer, patience=0, factor=0.5),
    }
    return factories[cls]()


SCHEDULER_CLASSES = [
    lr_scheduler.LambdaLR,
    lr_scheduler.MultiplicativeLR,
    lr_scheduler.StepLR,
    lr_scheduler.MultiStepLR,
    lr_scheduler.ConstantLR,
    lr_scheduler.LinearLR,
    lr_scheduler.ExponentialLR,
    lr_scheduler.PolynomialLR,
    lr_scheduler.CosineAnnealingLR,
    lr_scheduler.CosineAnnealingWarmRestarts,
    lr_scheduler.CyclicLR,
    lr_scheduler.OneCycleLR,
    lr_scheduler.SequentialLR,
    lr_scheduler.ChainedScheduler,
    lr_scheduler.ReduceLROnPlateau,
]


def test_scheduler_table_covers_torch():
    public = {
        value
        for name, value in vars(lr_scheduler).items()
        if isinstance(value, type)
        and not name.startswith("_")
        and issubclass(value, (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau))
        and value is not lr_scheduler.LRScheduler
    }
    assert public == set(SCHEDULER_CLASSES)


def step_scheduler(scheduler, optimizer, steps):
    for step in range(steps):
        optimizer.step()
        if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
            scheduler.step(1.0)  # never improves, so the rate drops
        else:
            scheduler.step()


@pytest.mark.parametrize("cls", SCHEDULER_CLASSES, ids=lambda cls: cls.__name__)
def test_scheduler_state_restored(tmp_path, cls):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
    scheduler = make_scheduler(cls, optimizer)
    assert get_default_hook(scheduler, DEFAULT_SAVE_HOOKS) is torch_save
    assert get_default_hook(scheduler, DEFAULT_LOAD_HOOKS) is torch_recovery
    step_scheduler(scheduler, optimizer, 3)
    expected_state = scheduler.state_dict()
    expected_lr = optimizer.param_groups[0]["lr"]
    Checkpointer(tmp_path, {"optimizer": optimizer, "scheduler": scheduler}).save_checkpoint()

    new_parameter = torch.nn.Parameter(torch.zeros(1))
    new_optimizer = torch.optim.SGD([new_parameter], lr=0.1, momentum=0.9)
    new_scheduler = make_scheduler(cls, new_optimizer)
    Checkpointer(tmp_path, {"optimizer": new_optimizer, "scheduler": new_scheduler}).recover_if_possible()

    assert_state_equal(new_scheduler.state_dict(), expected_state)
    assert new_optimizer.param_groups[0]["lr"] == expected_lr
    assert getattr(new_scheduler, "last_epoch", None) == getattr(scheduler, "last_epoch", None)


def test_reduce_lr_on_plateau_counters_restored(tmp_path):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, patience=1, factor=0.5)
    for metric in [1.0, 2.0, 3.0, 4.0]:
        scheduler.step(metric)
    Checkpointer(tmp_path, {"optimizer": optimizer, "scheduler": scheduler}).save_checkpoint()

    new_optimizer = torch.optim.SGD([parameter], lr=1.0)
    restored = lr_scheduler.ReduceLROnPlateau(new_optimizer, patience=1, factor=0.5)
    Checkpointer(tmp_path, {"optimizer": new_optimizer, "scheduler": restored}).recover_if_possible()

    # Metrics 2 and 3 are bad: the rate halves and the count restarts.
    assert restored.best == 1.0
    assert restored.num_bad_epochs == 1
    assert restored.optimizer.param_groups[0]["lr"] == 0.5


# GradScaler and the state_dict protocol


def test_grad_scaler_restored(tmp_path):
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    scaler.scale(torch.tensor(1.0))
    scaler.update(new_scale=256.0)
    assert get_default_hook(scaler, DEFAULT_SAVE_HOOKS) is torch_save
    Checkpointer(tmp_path, {"scaler": scaler}).save_checkpoint()

    restored = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=100)
    Checkpointer(tmp_path, {"scaler": restored}).recover_if_possible()

    assert restored.get_scale() == 256.0
    assert restored.get_growth_interval() == 7


class Counter:
    """Any object with state_dict and load_state_dict, registered nowhere."""

    def __init__(self, count=0):
        self.count = count

    def state_dict(self):
        return {"count": torch.tensor(self.count)}

    def load_state_dict(self, state):
        self.count = int(state["count"])


def test_state_dict_protocol_object_restored(tmp_path):
    assert get_default_hook(Counter(), DEFAULT_SAVE_HOOKS) is None
    Checkpointer(tmp_path, {"counter": Counter(41)}).save_checkpoint()
    restored = Counter()
    Checkpointer(tmp_path, {"counter": restored}).recover_if_possible()
    assert restored.count == 41


def test_object_without_hooks_rejected(tmp_path):
    checkpointer = Checkpointer(tmp_path)
    with pytest.raises(MissingHookError, match="'thing'"):
        checkpointer.add_recoverable("thing", object())
    with pytest.raises(TypeError):
        Checkpointer(tmp_path, {"thing": object()})


# Hook lookup through the MRO


class BaseWithHooks:
    def __init__(self):
        self.value = 0


def base_saver(obj, path):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"base {obj.value}")


def base_loader(obj, path, end_of_epoch):
    with open(path, encoding="utf-8") as handle:
        obj.value = int(handle.read().split()[1])
    obj.loaded_by = "base"


class Derived(BaseWithHooks):
    pass


class DerivedTwice(Derived):
    pass


def test_subclass_finds_base_hook(tmp_path, monkeypatch):
    monkeypatch.setitem(DEFAULT_SAVE_HOOKS, BaseWithHooks, base_saver)
    monkeypatch.setitem(DEFAULT_LOAD_HOOKS, BaseWithHooks, base_loader)
    obj = DerivedTwice()
    assert get_default_hook(obj, DEFAULT_SAVE_HOOKS) is base_saver
    assert get_default_hook(obj, DEFAULT_LOAD_HOOKS) is base_loader
    obj.value = 12
    Checkpointer(tmp_path, {"obj": obj}).save_checkpoint()
    restored = DerivedTwice()
    Checkpointer(tmp_path, {"obj": restored}).recover_if_possible()
    assert restored.value == 12
    assert restored.loaded_by == "base"


def test_nearest_class_hook_wins(monkeypatch):
    def derived_saver(obj, path):
        pass

    monkeypatch.setitem(DEFAULT_SAVE_HOOKS, BaseWithHooks, base_saver)
    monkeypatch.setitem(DEFAULT_SAVE_HOOKS, Derived, derived_saver)
    assert get_default_hook(DerivedTwice(), DEFAULT_SAVE_HOOKS) is derived_saver
    assert get_default_hook(BaseWithHooks(), DEFAULT_SAVE_HOOKS) is base_saver


def test_module_subclass_uses_torch_hooks():
    model = TwoLayers()
    assert get_default_hook(model, DEFAULT_SAVE_HOOKS) is torch_save
    assert get_default_hook(model, DEFAULT_LOAD_HOOKS) is torch_recovery
    assert get_default_hook(model, DEFAULT_TRANSFER_HOOKS) is torch_parameter_transfer
    assert get_default_hook(object(), DEFAULT_SAVE_HOOKS) is None


# Custom hooks


class Plain:
    def __init__(self, value=0):
        self.value = value


def plain_saver(obj, path):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(str(obj.value))


def test_custom_load_hook_two_arguments(tmp_path):
    calls = []

    def load_two(obj, path):
        calls.append(path.name)
        with open(path, encoding="utf-8") as handle:
            obj.value = int(handle.read())

    Checkpointer(tmp_path, {"obj": Plain(5)}, custom_load_hooks={"obj": load_two}, custom_save_hooks={"obj": plain_saver}).save_checkpoint()
    restored = Plain()
    checkpointer = Checkpointer(tmp_path, {"obj": restored}, custom_load_hooks={"obj": load_two}, custom_save_hooks={"obj": plain_saver})
    checkpointer.recover_if_possible()
    assert restored.value == 5
    assert calls == ["obj.ckpt"]


@pytest.mark.parametrize("end_of_epoch", [True, False])
def test_custom_load_hook_three_arguments(tmp_path, end_of_epoch):
    calls = []

    def load_three(obj, path, end_of_epoch):
        calls.append(end_of_epoch)
        with open(path, encoding="utf-8") as handle:
            obj.value = int(handle.read())

    checkpointer = Checkpointer(tmp_path)
    checkpointer.add_recoverable("obj", Plain(9), custom_load_hook=load_three, custom_save_hook=plain_saver)
    checkpointer.save_checkpoint(end_of_epoch=end_of_epoch)
    restored = Plain()
    other = Checkpointer(tmp_path)
    other.add_recoverable("obj", restored, custom_load_hook=load_three, custom_save_hook=plain_saver)
    other.recover_if_possible()
    assert restored.value == 9
    assert calls == [end_of_epoch]


def test_custom_hooks_override_defaults(tmp_path):
    model = torch.nn.Linear(1, 1)
    saved = []

    def save_fours(obj, path):
        saved.append(path.name)
        torch.save({"weight": torch.full((1, 1), 4.0), "bias": torch.full((1,), 4.0)}, path)

    Checkpointer(tmp_path, {"model": model}, custom_save_hooks={"model": save_fours}).save_checkpoint()
    Checkpointer(tmp_path, {"model": model}).recover_if_possible()
    assert saved == ["model.ckpt"]
    assert model.weight.item() == 4.0


# register_checkpoint_hooks and mark_as_*


@register_checkpoint_hooks
class MarkedRecoverable:
    def __init__(self, value=0):
        self.value = value
        self.end_of_epoch = None

    @mark_as_saver
    def save(self, path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(str(self.value))

    @mark_as_loader
    def load(self, path, end_of_epoch):
        self.end_of_epoch = end_of_epoch
        with open(path, encoding="utf-8") as handle:
            self.value = int(handle.read())

    @mark_as_transfer
    def transfer(self, path):
        with open(path, encoding="utf-8") as handle:
            self.value = -int(handle.read())


@register_checkpoint_hooks
class TwoArgumentLoader:
    def __init__(self, value=0):
        self.value = value

    @mark_as_saver
    def save(self, path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(str(self.value))

    @mark_as_loader
    def load(self, path):
        with open(path, encoding="utf-8") as handle:
            self.value = int(handle.read())


class MarkedSubclass(MarkedRecoverable):
    pass


def test_marked_methods_registered():
    assert DEFAULT_LOAD_HOOKS[MarkedRecoverable] is MarkedRecoverable.load
    assert DEFAULT_TRANSFER_HOOKS[MarkedRecoverable] is MarkedRecoverable.transfer
    assert MarkedRecoverable in DEFAULT_SAVE_HOOKS


def test_marked_recoverable_restored(tmp_path):
    Checkpointer(tmp_path, {"a": MarkedRecoverable(3), "b": TwoArgumentLoader(4), "c": MarkedSubclass(5)}).save_checkpoint(end_of_epoch=False)
    a, b, c = MarkedRecoverable(), TwoArgumentLoader(), MarkedSubclass()
    Checkpointer(tmp_path, {"a": a, "b": b, "c": c}).recover_if_possible()
    assert (a.value, b.value, c.value) == (3, 4, 5)
    assert a.end_of_epoch is False
    assert c.end_of_epoch is False


def test_transfer_hook_called_with_path(tmp_path):
    path = tmp_path / "value.ckpt"
    path.write_text("6", encoding="utf-8")
    obj = MarkedRecoverable()
    get_default_hook(obj, DEFAULT_TRANSFER_HOOKS)(obj, path)
    assert obj.value == -6


def test_decorator_with_arguments_returns_class():
    @register_checkpoint_hooks(save_on_main_only=False)
    class EveryRank:
        @mark_as_saver
        def save(self, path):
            pass

        @mark_as_loader
        def load(self, path, end_of_epoch):
            pass

    assert isinstance(EveryRank, type)
    assert DEFAULT_SAVE_HOOKS[EveryRank] is EveryRank.save
    del DEFAULT_SAVE_HOOKS[EveryRank], DEFAULT_LOAD_HOOKS[EveryRank]


def test_save_on_main_only_skips_other_ranks(monkeypatch, tmp_path):
    calls = []

    @register_checkpoint_hooks
    class MainOnly:
        @mark_as_saver
        def save(self, path):
            calls.append("main-only")

        @mark_as_loader
        def load(self, path, end_of_epoch):
            pass

    @register_checkpoint_hooks(save_on_main_only=False)
    class EveryRank:
        @mark_as_saver
        def save(self, path):
            calls.append("every-rank")

        @mark_as_loader
        def load(self, path, end_of_epoch):
            pass

    try:
        main_saver = DEFAULT_SAVE_HOOKS[MainOnly]
        every_saver = DEFAULT_SAVE_HOOKS[EveryRank]
        main_saver(MainOnly(), tmp_path / "a")
        every_saver(EveryRank(), tmp_path / "b")
        assert calls == ["main-only", "every-rank"]

        monkeypatch.setattr(distributed, "get_rank", lambda: 1)
        calls.clear()
        main_saver(MainOnly(), tmp_path / "a")
        every_saver(EveryRank(), tmp_path / "b")
        torch_save(torch.nn.Linear(1, 1), tmp_path / "c")
        assert calls == ["every-rank"]
        assert not (tmp_path / "c").exists()
    finally:
        for cls in (MainOnly, EveryRank):
            DEFAULT_SAVE_HOOKS.pop(cls, None)
            DEFAULT_LOAD_HOOKS.pop(cls, None)


def test_mark_as_saver_rejects_wrong_arity():
    with pytest.raises(TypeError, match="saver"):

        def save(self):
            pass

        mark_as_saver(save)
    with pytest.raises(TypeError, match="loader"):

        def load(self):
            pass

        mark_as_loader(load)


# EpochCounter


def run_epochs(checkpointer, counter, interrupt_at, intra_epoch):
    """Iterate epochs and save at the end of each, stopping in epoch ``interrupt_at``.

    With ``intra_epoch`` a checkpoint is saved in that epoch before stopping.
    """
    seen = []
    for epoch in counter:
        seen.append(epoch)
        if epoch == interrupt_at:
            if intra_epoch:
                checkpointer.save_checkpoint(end_of_epoch=False)
            return seen
        checkpointer.save_checkpoint(end_of_epoch=True)
    return seen


def test_epoch_counter_resumes_after_finished_epoch(tmp_path):
    counter = EpochCounter(5)
    checkpointer = Checkpointer(tmp_path, {"epoch": counter})
    assert run_epochs(checkpointer, counter, interrupt_at=3, intra_epoch=False) == [1, 2, 3]

    resumed = EpochCounter(5)
    Checkpointer(tmp_path, {"epoch": resumed}).recover_if_possible()
    assert resumed.current == 2
    assert list(resumed) == [3, 4, 5]


def test_epoch_counter_intra_epoch_repeats_epoch(tmp_path):
    counter = EpochCounter(5)
    checkpointer = Checkpointer(tmp_path, {"epoch": counter})
    assert run_epochs(checkpointer, counter, interrupt_at=3, intra_epoch=True) == [1, 2, 3]

    resumed = EpochCounter(5)
    Checkpointer(tmp_path, {"epoch": resumed}).recover_if_possible()
    assert resumed.current == 2
    assert list(resumed) == [3, 4, 5]


def test_epoch_counter_file_is_speechbrain_text(tmp_path):
    counter = EpochCounter(4)
    next(counter)
    next(counter)
    checkpoint = Checkpointer(tmp_path, {"epoch": counter}).save_checkpoint()
    assert checkpoint.paramfiles["epoch"].read_text(encoding="utf-8") == "2"


def test_epoch_counter_finished_run_iterates_nothing(tmp_path):
    counter = EpochCounter(2)
    checkpointer = Checkpointer(tmp_path, {"epoch": counter})
    for _ in counter:
        checkpointer.save_checkpoint()
    resumed = EpochCounter(2)
    Checkpointer(tmp_path, {"epoch": resumed}).recover_if_possible()
    assert list(resumed) == []


# RNGState


def draw_all():
    return (
        [random.random() for _ in range(3)],
        random.gauss(0.0, 1.0),
        numpy.random.rand(3).tolist(),
        numpy.random.randn(),
        torch.rand(3).tolist(),
        torch.randint(0, 1000, (3,)).tolist(),
    )


def test_rng_state_restores_draws(tmp_path):
    random.seed(1)
    numpy.random.seed(2)
    torch.manual_seed(3)
    draw_all()
    random.gauss(0.0, 1.0)  # leaves a cached second gaussian in random's state
    checkpointer = Checkpointer(tmp_path, {"rng": RNGState()})
    checkpointer.save_checkpoint()
    expected = draw_all()

    random.seed(100)
    numpy.random.seed(200)
    torch.manual_seed(300)
    assert draw_all() != expected
    checkpointer.recover_if_possible()
    assert draw_all() == expected


def test_rng_state_loads_weights_only(tmp_path):
    checkpoint = Checkpointer(tmp_path, {"rng": RNGState()}).save_checkpoint()
    state = torch.load(checkpoint.paramfiles["rng"], weights_only=True)
    assert set(state) >= {"python", "numpy", "torch"}


# Missing files and optional recoverables


def missing_file_checkpointer(tmp_path, how, **kwargs):
    Checkpointer(tmp_path, {"present": torch.nn.Linear(1, 1)}).save_checkpoint()
    recoverables = {"present": torch.nn.Linear(1, 1)}
    absent = {"absent": torch.nn.Linear(1, 1), "also_absent": torch.nn.Linear(1, 1)}
    if how == "constructor":
        return Checkpointer(tmp_path, {**recoverables, **absent}, **kwargs)
    checkpointer = Checkpointer(tmp_path, recoverables, **kwargs)
    if how == "add_recoverables":
        checkpointer.add_recoverables(absent)
    else:
        for name, obj in absent.items():
            checkpointer.add_recoverable(name, obj)
    return checkpointer


@pytest.mark.parametrize("how", ["constructor", "add_recoverables", "add_recoverable"])
def test_missing_file_raises(tmp_path, how):
    checkpointer = missing_file_checkpointer(tmp_path, how)
    before = checkpointer.recoverables["present"].weight.detach().clone()
    folder = checkpointer.find_checkpoint().path
    with pytest.raises(RuntimeError) as raised:
        checkpointer.recover_if_possible()
    message = str(raised.value)
    assert "'absent'" in message
    assert "'also_absent'" in message
    assert str(folder) in message
    assert "'present'" not in message
    assert torch.equal(checkpointer.recoverables["present"].weight, before)


def test_missing_file_partial_load(tmp_path, caplog):
    checkpointer = missing_file_checkpointer(tmp_path, "constructor", allow_partial_load=True)
    saved = torch.load(checkpointer.find_checkpoint().paramfiles["present"], weights_only=True)
    with caplog.at_level(logging.INFO, logger="recoverkit"):
        assert checkpointer.recover_if_possible() is not None
    assert torch.equal(checkpointer.recoverables["present"].weight, saved["weight"])
    assert "'absent'" in caplog.text


def test_optional_load_skipped_with_log(tmp_path, caplog):
    Checkpointer(tmp_path, {"model": torch.nn.Linear(1, 1)}).save_checkpoint()
    checkpointer = Checkpointer(tmp_path, {"model": torch.nn.Linear(1, 1)})
    scaler = torch.amp.GradScaler("cpu", init_scale=32.0)
    checkpointer.add_recoverable("scaler", scaler, optional_load=True)
    with caplog.at_level(logging.INFO, logger="recoverkit"):
        assert checkpointer.recover_if_possible() is not None
    assert scaler.get_scale() == 32.0
    skipped = [record for record in caplog.records if "'scaler'" in record.getMessage()]
    assert len(skipped) == 1
    assert skipped[0].levelno >= logging.INFO
