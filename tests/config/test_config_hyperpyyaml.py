"""Building Checkpointers from HyperPyYAML files, including SpeechBrain-style hparams."""

from __future__ import annotations

import pathlib

import pytest
import torch

from recoverkit import Checkpointer, EpochCounter, RNGState
from recoverkit.config import RetentionPolicy, SaveSchedule, load_checkpointer

# The checkpointer block of SpeechBrain's ASR template, with only the class path changed.
SPEECHBRAIN_HPARAMS = """
# Seed needs to be set at top of yaml, before objects with parameters are made
seed: 1986
output_folder: !ref OUTPUT/<seed>
save_folder: !ref <output_folder>/save
number_of_epochs: 4

model: !new:torch.nn.Sequential
    - !new:torch.nn.Linear
        in_features: 3
        out_features: 4
    - !new:torch.nn.ReLU
    - !new:torch.nn.Linear
        in_features: 4
        out_features: 2

opt_class: !name:torch.optim.Adam
    lr: 0.001

epoch_counter: !new:speechbrain.utils.epoch_loop.EpochCounter
    limit: !ref <number_of_epochs>

# Objects in "recoverables" are saved and restored by the checkpointer.
checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
    checkpoints_dir: !ref <save_folder>
    recoverables:
        model: !ref <model>
        counter: !ref <epoch_counter>
"""

SCHEMA_HPARAMS = """
save_folder: OUTPUT/schema
model: !new:torch.nn.Linear
    in_features: 3
    out_features: 2
loss_scale: 3
checkpointer:
    checkpoints_dir: !ref <save_folder>
    recoverables:
        model: !ref <model>
        rng: rng
        epochs: {builtin: epoch_counter, limit: 6}
    retention:
        num_to_keep: 1
        min_keys: [valid_loss]
        importance_keys: [recency]
    schedule:
        every_n_epochs: 2
        on_signals: [SIGTERM]
"""


def _speechbrain_file(tmp_path: pathlib.Path) -> pathlib.Path:
    text = SPEECHBRAIN_HPARAMS.replace("OUTPUT", str(tmp_path / "results"))
    text = text.replace("speechbrain.utils.checkpoints.Checkpointer", "recoverkit.Checkpointer")
    text = text.replace("speechbrain.utils.epoch_loop.EpochCounter", "recoverkit.EpochCounter")
    path = tmp_path / "hparams.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _schema_file(tmp_path: pathlib.Path, name: str = "train.yaml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(SCHEMA_HPARAMS.replace("OUTPUT", str(tmp_path / "results")), encoding="utf-8")
    return path


def test_speechbrain_hparams_build_checkpointer(tmp_path: pathlib.Path) -> None:
    loaded = load_checkpointer(_speechbrain_file(tmp_path))

    assert isinstance(loaded.checkpointer, Checkpointer)
    assert loaded.checkpointer.checkpoints_dir == tmp_path / "results" / "1986" / "save"
    assert loaded.recoverables["model"] is loaded.objects["model"]
    assert loaded.epoch_counter is loaded.objects["epoch_counter"]
    assert loaded.retention == RetentionPolicy()
    assert loaded.schedule == SaveSchedule()


def test_speechbrain_hparams_save_and_recover(tmp_path: pathlib.Path) -> None:
    path = _speechbrain_file(tmp_path)
    first = load_checkpointer(path)
    for epoch in first.epoch_counter:
        with torch.no_grad():
            first.objects["model"][0].weight.fill_(float(epoch))
        first.checkpointer.save_and_keep_only(meta={"epoch": epoch})
        if epoch == 2:
            break

    second = load_checkpointer(path)
    second.checkpointer.recover_if_possible()

    assert second.epoch_counter.current == 2
    assert list(second.epoch_counter) == [3, 4]
    assert torch.equal(second.objects["model"][0].weight, torch.full((4, 3), 2.0))
    assert len(second.checkpointer.list_checkpoints()) == 1


def test_speechbrain_overrides_as_dict(tmp_path: pathlib.Path) -> None:
    loaded = load_checkpointer(_speechbrain_file(tmp_path), {"seed": 7, "number_of_epochs": 9})

    assert loaded.checkpointer.checkpoints_dir == tmp_path / "results" / "7" / "save"
    assert loaded.epoch_counter.limit == 9


def test_schema_hparams_build_everything(tmp_path: pathlib.Path) -> None:
    loaded = load_checkpointer(_schema_file(tmp_path))

    assert sorted(loaded.recoverables) == ["epochs", "model", "rng"]
    assert loaded.recoverables["model"] is loaded.objects["model"]
    assert isinstance(loaded.recoverables["rng"], RNGState)
    assert isinstance(loaded.epoch_counter, EpochCounter)
    assert loaded.retention.min_keys == ("valid_loss",)
    assert loaded.schedule == SaveSchedule(every_n_epochs=2, signals=("SIGTERM",))
    assert sorted(loaded.objects) == ["model"]


def test_schema_hparams_retention_prunes(tmp_path: pathlib.Path) -> None:
    loaded = load_checkpointer(_schema_file(tmp_path))
    for epoch, loss in enumerate([0.3, 0.1, 0.7], start=1):
        loaded.save_and_keep_only(meta={"epoch": epoch, "valid_loss": loss})

    kept = sorted(ckpt.meta["epoch"] for ckpt in loaded.checkpointer.list_checkpoints())

    # min_keys keeps epoch 2 (lowest loss); the recency key keeps epoch 3.
    assert kept == [2, 3]


def test_schema_hparams_key_value_overrides(tmp_path: pathlib.Path) -> None:
    loaded = load_checkpointer(_schema_file(tmp_path), [f"save_folder={tmp_path / 'other'}"])

    assert loaded.checkpointer.checkpoints_dir == tmp_path / "other"


def test_ref_by_name_and_name_tag_hooks(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "hooks.hpy.yaml"
    path.write_text(
        f"""
counter: !new:recoverkit.EpochCounter {{limit: 5}}
checkpointer:
    checkpoints_dir: {tmp_path / 'ckpts'}
    recoverables:
        counter:
            ref: counter
            save_hook: !name:tests_config_hpy_hooks.save_text
            load_hook: !name:tests_config_hpy_hooks.load_text
""",
        encoding="utf-8",
    )
    module = tmp_path / "tests_config_hpy_hooks.py"
    module.write_text(
        "def save_text(obj, path):\n    path.write_text('saved:' + str(obj.current))\n\n"
        "def load_text(obj, path, end_of_epoch):\n    obj.current = int(path.read_text().split(':')[1])\n",
        encoding="utf-8",
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        loaded = load_checkpointer(path)
        loaded.objects["counter"].current = 4
        checkpoint = loaded.checkpointer.save_checkpoint()
        loaded.objects["counter"].current = 0
        loaded.checkpointer.load_checkpoint(checkpoint)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tests_config_hpy_hooks", None)

    assert checkpoint.paramfiles["counter"].read_text() == "saved:4"
    assert loaded.objects["counter"].current == 4


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("plain.yaml", "a: 1\n", False),
        ("tagged.yaml", "a: !new:torch.nn.ReLU\n", True),
        ("commented.yaml", "a: 1  # !ref <b>\n", False),
        ("marked.hpy.yaml", "a: 1\n", True),
    ],
)
def test_hyperpyyaml_detection(tmp_path: pathlib.Path, name: str, text: str, expected: bool) -> None:
    from recoverkit.config.hyperpyyaml_frontend import is_hyperpyyaml

    assert is_hyperpyyaml(tmp_path / name, text) is expected
