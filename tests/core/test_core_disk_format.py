"""The on-disk format: SpeechBrain's layout, the meta file, names and safe loading."""

import os
import pathlib
import pickle
import time

import numpy
import pytest
import torch
import yaml

from recoverkit import (
    CheckpointExistsError,
    Checkpointer,
    EpochCounter,
    InvalidCheckpointNameError,
    InvalidMetaError,
    RecoverkitError,
    UnsafeCheckpointFileError,
)


def make_model(value):
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(value)
    return model


def make_optimizer(model, lr):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def write_speechbrain_checkpoint(checkpoints_dir, name, paramfiles, meta, end_of_epoch=True, unixtime=None):
    """Write a checkpoint folder the way SpeechBrain's Checkpointer writes it.

    ``paramfiles`` maps a recoverable name to the object ``torch.save`` writes.
    """
    folder = pathlib.Path(checkpoints_dir) / f"CKPT+{name}"
    folder.mkdir(parents=True)
    full_meta = {"unixtime": time.time() if unixtime is None else unixtime, "end-of-epoch": end_of_epoch}
    full_meta.update(meta)
    with open(folder / "CKPT.yaml", "w", encoding="utf-8") as handle:
        handle.write("# yamllint disable\n")
        handle.write(yaml.dump(full_meta))
    for recoverable, content in paramfiles.items():
        torch.save(content, folder / f"{recoverable}.ckpt")
    return folder


def speechbrain_read(checkpoints_dir):
    """List checkpoints with SpeechBrain's reading rule: folder, meta, every .ckpt file."""
    found = []
    for folder in sorted(pathlib.Path(checkpoints_dir).iterdir()):
        if not (folder.is_dir() and folder.name.startswith("CKPT+")):
            continue
        if not (folder / "CKPT.yaml").exists():
            continue
        with open(folder / "CKPT.yaml", encoding="utf-8") as handle:
            meta = yaml.safe_load(handle)
        paramfiles = {path.stem: path for path in folder.iterdir() if path.suffix == ".ckpt"}
        found.append((folder, meta, paramfiles))
    return found


def speechbrain_load(meta, paramfiles, recoverables):
    end_of_epoch = meta["end-of-epoch"]  # SpeechBrain raises KeyError without it
    assert isinstance(end_of_epoch, bool)
    for name, obj in recoverables.items():
        obj.load_state_dict(torch.load(paramfiles[name]))


def tree(path):
    """Return every path below ``path`` with its size, to compare a folder before and after."""
    result = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = pathlib.Path(root) / name
            result[str(full.relative_to(path))] = full.stat().st_size if full.is_file() else None
    return result


# SpeechBrain folders read by recoverkit


def test_speechbrain_folder_recovered(tmp_path):
    saved_model = make_model(2.5)
    saved_optimizer = make_optimizer(saved_model, lr=0.125)
    folder = write_speechbrain_checkpoint(
        tmp_path,
        "2024-01-01+10-00-00+00",
        {"model": saved_model.state_dict(), "optimizer": saved_optimizer.state_dict()},
        {"loss": 0.75, "epoch": 4},
        unixtime=1700000000.5,
    )
    model = make_model(0.0)
    optimizer = make_optimizer(model, lr=1.0)
    checkpointer = Checkpointer(tmp_path, {"model": model, "optimizer": optimizer})

    listed = checkpointer.list_checkpoints()
    assert len(listed) == 1
    assert listed[0].path == folder
    assert listed[0].meta == {"unixtime": 1700000000.5, "end-of-epoch": True, "loss": 0.75, "epoch": 4}
    assert listed[0].paramfiles == {"model": folder / "model.ckpt", "optimizer": folder / "optimizer.ckpt"}

    assert checkpointer.recover_if_possible(min_key="loss") == listed[0]
    assert torch.equal(model.weight, torch.full((2, 3), 2.5))
    assert torch.equal(model.bias, torch.full((2,), 2.5))
    assert optimizer.param_groups[0]["lr"] == 0.125


def test_speechbrain_newest_folder_chosen(tmp_path):
    write_speechbrain_checkpoint(tmp_path, "old", {"model": make_model(1.0).state_dict()}, {}, unixtime=100.0)
    write_speechbrain_checkpoint(tmp_path, "new", {"model": make_model(2.0).state_dict()}, {}, unixtime=200.0)
    write_speechbrain_checkpoint(tmp_path, "mid", {"model": make_model(3.0).state_dict()}, {}, unixtime=150.0)
    model = make_model(0.0)
    recovered = Checkpointer(tmp_path, {"model": model}).recover_if_possible()
    assert recovered.path.name == "CKPT+new"
    assert model.weight[0, 0].item() == 2.0


def test_speechbrain_intra_epoch_counter(tmp_path):
    folder = write_speechbrain_checkpoint(tmp_path, "mid-epoch", {}, {}, end_of_epoch=False)
    (folder / "counter.ckpt").write_text("3", encoding="utf-8")  # SpeechBrain's EpochCounter file
    counter = EpochCounter(10)
    Checkpointer(tmp_path, {"counter": counter}).recover_if_possible()
    assert counter.current == 2
    assert next(counter) == 3


def test_speechbrain_folder_mixed_with_recoverkit(tmp_path):
    write_speechbrain_checkpoint(tmp_path, "sb", {"model": make_model(1.0).state_dict()}, {"loss": 0.5}, unixtime=100.0)
    model = make_model(7.0)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    checkpointer.save_checkpoint(meta={"loss": 0.25})

    assert len(checkpointer.list_checkpoints()) == 2
    checkpointer.recover_if_possible(max_key="loss")
    assert model.weight[0, 0].item() == 1.0
    checkpointer.recover_if_possible()
    assert model.weight[0, 0].item() == 7.0


def test_speechbrain_folder_never_deleted(tmp_path):
    sb_folder = write_speechbrain_checkpoint(tmp_path, "sb", {"model": make_model(1.0).state_dict()}, {}, unixtime=100.0)
    checkpointer = Checkpointer(tmp_path, {"model": make_model(2.0)})
    own = checkpointer.save_checkpoint()
    checkpointer.delete_checkpoints(num_to_keep=0)
    assert sb_folder.is_dir()
    assert not own.path.exists()


# recoverkit folders read by SpeechBrain


def test_recoverkit_folder_read_by_speechbrain(tmp_path):
    model = make_model(1.75)
    optimizer = make_optimizer(model, lr=0.0625)
    saved = Checkpointer(tmp_path, {"model": model, "optimizer": optimizer}).save_checkpoint(
        meta={"loss": 0.5, "epoch": 3}, end_of_epoch=False
    )

    found = speechbrain_read(tmp_path)
    assert len(found) == 1
    folder, meta, paramfiles = found[0]
    assert folder == saved.path
    assert set(paramfiles) == {"model", "optimizer"}
    assert meta["end-of-epoch"] is False
    assert meta["unixtime"] == saved.meta["unixtime"]
    assert meta["loss"] == 0.5
    assert meta["epoch"] == 3

    new_model = make_model(0.0)
    new_optimizer = make_optimizer(new_model, lr=1.0)
    speechbrain_load(meta, paramfiles, {"model": new_model, "optimizer": new_optimizer})
    assert torch.equal(new_model.weight, torch.full((2, 3), 1.75))
    assert new_optimizer.param_groups[0]["lr"] == 0.0625


def test_recoverkit_meta_loads_with_full_yaml_loader(tmp_path):
    saved = Checkpointer(tmp_path, {"model": make_model(1.0)}).save_checkpoint(meta={"wer": 12.5})
    with open(saved.path / "CKPT.yaml", encoding="utf-8") as handle:
        meta = yaml.load(handle, Loader=yaml.Loader)
    assert meta["wer"] == 12.5
    assert meta["end-of-epoch"] is True


def test_speechbrain_reader_skips_unfinished_save(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"model": make_model(1.0)})
    checkpointer.save_checkpoint()
    leftover = tmp_path / ".tmp+CKPT+unfinished+1+abc"
    leftover.mkdir()
    (leftover / "CKPT.yaml").write_text("unixtime: 1.0\nend-of-epoch: true\n", encoding="utf-8")
    assert len(speechbrain_read(tmp_path)) == 1


# Meta values


def test_meta_always_has_time_and_flag(tmp_path):
    before = time.time()
    saved = Checkpointer(tmp_path, {"model": make_model(1.0)}).save_checkpoint(end_of_epoch=False)
    assert before <= saved.meta["unixtime"] <= time.time()
    assert saved.meta["end-of-epoch"] is False
    assert set(saved.meta) == {"unixtime", "end-of-epoch"}


def test_meta_array_scalars_stored_as_numbers(tmp_path):
    meta = {
        "loss": torch.tensor(0.25),
        "count": torch.tensor(3),
        "acc": numpy.float32(0.5),
        "steps": numpy.int64(7),
        "flag": numpy.bool_(True),
        "zero_dim": numpy.array(1.5),
        "nested": {"wer": torch.tensor([12.5]), "list": [numpy.float64(2.0), 1]},
    }
    saved = Checkpointer(tmp_path, {"model": make_model(1.0)}).save_checkpoint(meta=meta)
    raw = yaml.safe_load((saved.path / "CKPT.yaml").read_text(encoding="utf-8"))
    expected = {
        "loss": 0.25,
        "count": 3,
        "acc": 0.5,
        "steps": 7,
        "flag": True,
        "zero_dim": 1.5,
        "nested": {"wer": 12.5, "list": [2.0, 1]},
    }
    for key, value in expected.items():
        assert raw[key] == value, key
        assert saved.meta[key] == value, key
    assert type(raw["loss"]) is float
    assert type(raw["count"]) is int
    assert type(raw["steps"]) is int
    assert type(raw["flag"]) is bool
    assert isinstance(meta["loss"], torch.Tensor)  # the caller's dict is unchanged


@pytest.mark.parametrize(
    ("bad_meta", "key"),
    [
        ({"fine": 1, "model": object()}, "model"),
        ({"fine": 1, "weights": torch.zeros(3)}, "weights"),
        ({"fine": 1, "array": numpy.zeros(2)}, "array"),
        ({"fine": 1, "where": pathlib.Path("/x")}, "where"),
        ({"fine": 1, "tags": {"a", "b"}}, "tags"),
        ({"fine": 1, "deep": {"inner": [1, object()]}}, "deep"),
        ({"fine": 1, 5: "numeric key"}, "5"),
    ],
)
def test_unsafe_meta_rejected_before_writing(tmp_path, bad_meta, key):
    checkpointer = Checkpointer(tmp_path / "ckpts", {"model": make_model(1.0)})
    checkpointer.save_checkpoint(meta={"fine": 0})
    before = tree(tmp_path)
    with pytest.raises(InvalidMetaError) as raised:
        checkpointer.save_checkpoint(meta=bad_meta)
    assert key in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert tree(tmp_path) == before


def test_unsafe_meta_deletes_nothing(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"model": make_model(1.0)})
    checkpointer.save_checkpoint()
    checkpointer.save_checkpoint()
    before = tree(tmp_path)
    with pytest.raises(InvalidMetaError, match="'bad'"):
        checkpointer.save_and_keep_only(meta={"bad": object()})
    assert tree(tmp_path) == before


def test_manifest_key_reserved(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"model": make_model(1.0)})
    with pytest.raises(InvalidMetaError, match="recoverkit-files"):
        checkpointer.save_checkpoint(meta={"recoverkit-files": 1})
    assert tree(tmp_path) == {}


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
    ],
)
def test_meta_with_python_tag_not_executed(tmp_path, payload):
    marker = tmp_path / "marker"
    checkpoints_dir = tmp_path / "ckpts"
    folder = write_speechbrain_checkpoint(checkpoints_dir, "evil", {"model": make_model(1.0).state_dict()}, {})
    text = f"unixtime: 1.0\nend-of-epoch: true\nloss: {payload.format(marker=marker)}\n"
    (folder / "CKPT.yaml").write_text(text, encoding="utf-8")
    write_speechbrain_checkpoint(checkpoints_dir, "good", {"model": make_model(2.0).state_dict()}, {}, unixtime=0.5)

    model = make_model(0.0)
    checkpointer = Checkpointer(checkpoints_dir, {"model": model})
    listed = checkpointer.list_checkpoints()
    assert [ckpt.path.name for ckpt in listed] == ["CKPT+good"]
    checkpointer.recover_if_possible()
    assert model.weight[0, 0].item() == 2.0
    assert not marker.exists()


# Custom names


def test_custom_name_folder(tmp_path):
    saved = Checkpointer(tmp_path, {"model": make_model(1.0)}).save_checkpoint(name="epoch-3")
    assert saved.path == tmp_path / "CKPT+epoch-3"
    assert sorted(path.name for path in saved.path.iterdir()) == ["CKPT.yaml", "model.ckpt"]


def test_existing_custom_name_rejected(tmp_path):
    model = make_model(1.0)
    checkpointer = Checkpointer(tmp_path, {"model": model})
    first = checkpointer.save_checkpoint(name="best", meta={"run": 1})
    before = tree(tmp_path)
    contents = {path.name: path.read_bytes() for path in first.path.iterdir()}

    with torch.no_grad():
        model.weight.fill_(9.0)
    with pytest.raises(CheckpointExistsError) as raised:
        checkpointer.save_checkpoint(name="best", meta={"run": 2})
    assert "best" in str(raised.value)
    assert isinstance(raised.value, FileExistsError)
    assert tree(tmp_path) == before
    assert {path.name: path.read_bytes() for path in first.path.iterdir()} == contents

    restored = make_model(0.0)
    recovered = Checkpointer(tmp_path, {"model": restored}).recover_if_possible()
    assert recovered.meta["run"] == 1
    assert restored.weight[0, 0].item() == 1.0


def test_existing_custom_name_in_keep_only_deletes_nothing(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"model": make_model(1.0)})
    checkpointer.save_checkpoint(name="a")
    checkpointer.save_checkpoint(name="b")
    before = tree(tmp_path)
    with pytest.raises(CheckpointExistsError):
        checkpointer.save_and_keep_only(name="a")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("name", ["", "   ", "a/b", "../up", "..", "a/../b", "a\\b", "x..y", ".hidden"])
def test_invalid_custom_name_rejected(tmp_path, name):
    checkpointer = Checkpointer(tmp_path / "ckpts", {"model": make_model(1.0)})
    with pytest.raises(InvalidCheckpointNameError) as raised:
        checkpointer.save_checkpoint(name=name)
    assert repr(name) in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert tree(tmp_path) == {"ckpts": None}


# Weights-only loading


class RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class Custom:
    """A class that weights-only loading does not allow until registered."""

    def __init__(self, value):
        self.value = value


class HoldsCustom:
    def __init__(self):
        self.item = Custom(0)

    def state_dict(self):
        return {"item": self.item}

    def load_state_dict(self, state):
        self.item = state["item"]


def test_crafted_pickle_not_run(tmp_path):
    marker = tmp_path / "marker"
    checkpoints_dir = tmp_path / "ckpts"
    write_speechbrain_checkpoint(checkpoints_dir, "evil", {"model": RunsCommand(f"touch {marker}")}, {})
    checkpointer = Checkpointer(checkpoints_dir, {"model": make_model(1.0)})

    with pytest.raises(UnsafeCheckpointFileError) as raised:
        checkpointer.load_checkpoint(checkpointer.find_checkpoint())
    assert not marker.exists()
    assert "torch.serialization.add_safe_globals" in str(raised.value)
    assert "posix.system" in str(raised.value)
    assert "model.ckpt" in str(raised.value)
    assert isinstance(raised.value, pickle.UnpicklingError)

    with pytest.raises(RecoverkitError, match="add_safe_globals"):
        checkpointer.recover_if_possible()
    assert not marker.exists()


def test_custom_global_needs_explicit_allow(tmp_path):
    holder = HoldsCustom()
    holder.item = Custom(42)
    with torch.serialization.safe_globals([Custom]):
        Checkpointer(tmp_path, {"holder": holder}).save_checkpoint()

    restored = HoldsCustom()
    checkpointer = Checkpointer(tmp_path, {"holder": restored})
    with pytest.raises(UnsafeCheckpointFileError) as raised:
        checkpointer.load_checkpoint(checkpointer.find_checkpoint())
    assert "add_safe_globals" in str(raised.value)
    assert "Custom" in str(raised.value)
    assert restored.item.value == 0

    with torch.serialization.safe_globals([Custom]):
        checkpointer.recover_if_possible()
    assert restored.item.value == 42


# Listing and deleting


def test_hidden_and_incomplete_folders_not_listed(tmp_path):
    checkpointer = Checkpointer(tmp_path, {"model": make_model(1.0)})
    saved = checkpointer.save_checkpoint()
    for name in [".tmp+CKPT+x+1+ab", ".trash+CKPT+y+cd"]:
        hidden = tmp_path / name
        hidden.mkdir()
        (hidden / "CKPT.yaml").write_text("unixtime: 1.0\nend-of-epoch: true\n", encoding="utf-8")
        torch.save(make_model(0.0).state_dict(), hidden / "model.ckpt")
    (tmp_path / "CKPT+no-meta").mkdir()
    (tmp_path / "CKPT+file").write_text("not a folder", encoding="utf-8")

    assert checkpointer.list_checkpoints() == [saved]
    second = checkpointer.save_checkpoint()
    assert not (tmp_path / ".tmp+CKPT+x+1+ab").exists()
    assert not (tmp_path / ".trash+CKPT+y+cd").exists()
    assert (tmp_path / "CKPT+no-meta").is_dir()
    assert {ckpt.path for ckpt in checkpointer.list_checkpoints()} == {saved.path, second.path}


def test_delete_hides_folder_before_removing(tmp_path, monkeypatch):
    import recoverkit.storage.atomic as atomic

    checkpointer = Checkpointer(tmp_path, {"model": make_model(1.0)})
    old = checkpointer.save_checkpoint()
    checkpointer.save_checkpoint()
    removed = []
    real_rmtree = atomic.shutil.rmtree

    def watching_rmtree(path, *args, **kwargs):
        removed.append((pathlib.Path(path).name, old.path.exists()))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(atomic.shutil, "rmtree", watching_rmtree)
    checkpointer.delete_checkpoints()
    assert len(removed) == 1
    assert removed[0][0].startswith(".")
    assert removed[0][1] is False
    assert not old.path.exists()


def test_garbage_file_reports_corruption(tmp_path):
    from recoverkit.errors import CheckpointFormatError, UnsafeCheckpointFileError
    from recoverkit.storage.torch_io import load_weights_only

    path = tmp_path / "model.ckpt"
    path.write_bytes(b"not a torch file " * 8)

    with pytest.raises(CheckpointFormatError) as raised:
        load_weights_only(path)

    assert not isinstance(raised.value, UnsafeCheckpointFileError)
    assert "not a valid torch.save file" in str(raised.value)
    assert "recoverkit verify" in str(raised.value)


def test_speechbrain_tuple_meta_recovered(tmp_path):
    model = torch.nn.Linear(2, 1)
    write_speechbrain_checkpoint(tmp_path, "tuple", {"model": model.state_dict()}, {"input_shape": (8, 2)})

    checkpoint = Checkpointer(tmp_path, {"model": torch.nn.Linear(2, 1)}).recover_if_possible()

    assert checkpoint is not None
    assert checkpoint.meta["input_shape"] == [8, 2]
