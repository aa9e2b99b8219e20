"""Which checkpoints selection finds and retention keeps."""

import inspect
import math

import pytest
import torch

from recoverkit import Checkpointer, ckpt_recency


@pytest.fixture
def checkpointer(tmp_path):
    return Checkpointer(tmp_path / "ckpts", {"model": torch.nn.Linear(2, 2)})


def save_all(checkpointer, metas):
    return [checkpointer.save_checkpoint(meta=meta) for meta in metas]


def remaining(checkpointer):
    return sorted(ckpt.meta["i"] for ckpt in checkpointer.list_checkpoints())


def indexed(values, key):
    """Metas {'i': i, key: value}; a value of None leaves the key out."""
    metas = []
    for i, value in enumerate(values):
        meta = {"i": i}
        if value is not None:
            meta[key] = value
        metas.append(meta)
    return metas


# Finding


def test_find_checkpoint_empty_folder(checkpointer):
    assert checkpointer.find_checkpoint() is None
    assert checkpointer.find_checkpoints() == []
    assert checkpointer.recover_if_possible() is None


def test_find_checkpoint_default_newest(checkpointer):
    save_all(checkpointer, indexed([None] * 4, "x"))
    assert checkpointer.find_checkpoint().meta["i"] == 3


def test_find_checkpoints_order_and_limit(checkpointer):
    save_all(checkpointer, indexed([None] * 5, "x"))
    found = checkpointer.find_checkpoints(max_num_checkpoints=3)
    assert [ckpt.meta["i"] for ckpt in found] == [4, 3, 2]
    assert [ckpt.meta["i"] for ckpt in checkpointer.find_checkpoints()] == [4, 3, 2, 1, 0]


def test_find_checkpoint_max_and_min_key(checkpointer):
    save_all(checkpointer, indexed([0.5, 0.9, 0.2, 0.7], "acc"))
    assert checkpointer.find_checkpoint(max_key="acc").meta["i"] == 1
    assert checkpointer.find_checkpoint(min_key="acc").meta["i"] == 2


def test_find_checkpoint_importance_key(checkpointer):
    save_all(checkpointer, indexed([3, 1, 2], "score"))
    found = checkpointer.find_checkpoint(importance_key=lambda ckpt: -ckpt.meta["score"])
    assert found.meta["i"] == 1


def test_find_checkpoint_predicate(checkpointer):
    save_all(checkpointer, indexed([0.5, 0.9, 0.2, 0.7], "acc"))
    found = checkpointer.find_checkpoint(max_key="acc", ckpt_predicate=lambda ckpt: ckpt.meta["i"] != 1)
    assert found.meta["i"] == 3


def test_find_checkpoint_missing_key_not_considered(checkpointer):
    save_all(checkpointer, indexed([0.5, 0.3, None], "acc"))
    assert checkpointer.find_checkpoint(min_key="acc").meta["i"] == 1
    assert [c.meta["i"] for c in checkpointer.find_checkpoints(max_key="acc")] == [0, 1]


def test_find_checkpoint_key_absent_everywhere(checkpointer):
    save_all(checkpointer, indexed([None, None], "acc"))
    assert checkpointer.find_checkpoint(max_key="acc") is None


def test_find_checkpoint_nan_never_best(checkpointer):
    save_all(checkpointer, indexed([0.5, 0.3, math.nan], "acc"))
    assert checkpointer.find_checkpoint(max_key="acc").meta["i"] == 0
    assert checkpointer.find_checkpoint(min_key="acc").meta["i"] == 1


def test_find_checkpoint_nan_importance_never_best(checkpointer):
    save_all(checkpointer, indexed([0.5, math.nan], "acc"))

    def importance(ckpt):
        return ckpt.meta["acc"]

    assert checkpointer.find_checkpoint(importance_key=importance).meta["i"] == 0


def test_find_checkpoint_only_nan_finds_none(checkpointer):
    save_all(checkpointer, indexed([math.nan, math.nan], "acc"))
    assert checkpointer.find_checkpoint(max_key="acc") is None
    assert checkpointer.find_checkpoint(importance_key=lambda ckpt: ckpt.meta["acc"]) is None


def test_find_checkpoint_ties_go_to_newest(checkpointer):
    save_all(checkpointer, indexed([0.9, 0.1, 0.9, 0.9, 0.1], "acc"))
    assert checkpointer.find_checkpoint(max_key="acc").meta["i"] == 3
    assert checkpointer.find_checkpoint(min_key="acc").meta["i"] == 4
    assert checkpointer.find_checkpoint(importance_key=lambda ckpt: 1.0).meta["i"] == 4


@pytest.mark.parametrize(
    "arguments",
    [
        {"importance_key": ckpt_recency, "max_key": "acc"},
        {"importance_key": ckpt_recency, "min_key": "acc"},
        {"max_key": "acc", "min_key": "loss"},
    ],
)
def test_more_than_one_key_raises(checkpointer, arguments):
    save_all(checkpointer, [{"i": 0, "acc": 1.0, "loss": 1.0}])
    with pytest.raises(ValueError, match="at most one"):
        checkpointer.find_checkpoint(**arguments)
    with pytest.raises(ValueError, match="at most one"):
        checkpointer.find_checkpoints(**arguments)
    with pytest.raises(ValueError, match="at most one"):
        checkpointer.recover_if_possible(**arguments)


# delete_checkpoints


def test_delete_default_keeps_newest(checkpointer):
    save_all(checkpointer, indexed([None] * 5, "x"))
    checkpointer.delete_checkpoints()
    assert remaining(checkpointer) == [4]


def test_delete_num_to_keep_two(checkpointer):
    save_all(checkpointer, indexed([None] * 5, "x"))
    checkpointer.delete_checkpoints(num_to_keep=2)
    assert remaining(checkpointer) == [3, 4]


def test_delete_num_to_keep_zero(checkpointer):
    save_all(checkpointer, indexed([None] * 3, "x"))
    checkpointer.delete_checkpoints(num_to_keep=0)
    assert remaining(checkpointer) == []


def test_delete_max_keys_only(checkpointer):
    save_all(checkpointer, indexed([0.5, 0.9, 0.7, 0.8, 0.1, 0.3], "acc"))
    checkpointer.delete_checkpoints(num_to_keep=2, max_keys=["acc"], importance_keys=[])
    assert remaining(checkpointer) == [1, 3]


def test_delete_min_keys_only(checkpointer):
    save_all(checkpointer, indexed([0.5, 0.9, 0.7, 0.8, 0.1, 0.3], "loss"))
    checkpointer.delete_checkpoints(num_to_keep=2, min_keys=["loss"], importance_keys=[])
    assert remaining(checkpointer) == [4, 5]


def test_delete_max_key_tie_keeps_newest(checkpointer):
    save_all(checkpointer, indexed([0.5, 0.9, 0.7, 0.9, 0.1], "acc"))
    checkpointer.delete_checkpoints(num_to_keep=1, max_keys=["acc"], importance_keys=[])
    assert remaining(checkpointer) == [3]


def test_delete_keeps_union_of_keys(checkpointer):
    metas = [
        {"i": 0, "acc": 0.9, "loss": 0.5},
        {"i": 1, "acc": 0.1, "loss": 0.1},
        {"i": 2, "acc": 0.5, "loss": 0.6},
        {"i": 3, "acc": 0.4, "loss": 0.7},
        {"i": 4, "acc": 0.3, "loss": 0.8},
    ]
    save_all(checkpointer, metas)
    checkpointer.delete_checkpoints(num_to_keep=1, max_keys=["acc"], min_keys=["loss"])
    assert remaining(checkpointer) == [0, 1, 4]


def test_delete_union_overlap_keeps_fewer(checkpointer):
    save_all(checkpointer, indexed([0.1, 0.2, 0.3, 0.9], "acc"))
    checkpointer.delete_checkpoints(num_to_keep=2, max_keys=["acc"])
    assert remaining(checkpointer) == [2, 3]


def test_delete_several_importance_keys(checkpointer):
    save_all(checkpointer, indexed([5, 1, 4, 2, 3], "score"))

    def highest_score(ckpt):
        return ckpt.meta["score"]

    def lowest_index(ckpt):
        return -ckpt.meta["i"]

    checkpointer.delete_checkpoints(num_to_keep=1, importance_keys=[highest_score, lowest_index])
    assert remaining(checkpointer) == [0]
    save_all(checkpointer, [{"i": 5, "score": 0}, {"i": 6, "score": 9}])
    checkpointer.delete_checkpoints(num_to_keep=1, importance_keys=[highest_score, lowest_index])
    assert remaining(checkpointer) == [0, 6]


def test_delete_missing_key_not_kept_by_that_key(checkpointer):
    save_all(checkpointer, indexed([0.2, 0.3, None, None], "acc"))
    checkpointer.delete_checkpoints(num_to_keep=1, max_keys=["acc"], importance_keys=[])
    assert remaining(checkpointer) == [1]


def test_delete_nan_not_kept_as_best(checkpointer):
    save_all(checkpointer, indexed([0.2, 0.3, math.nan], "acc"))
    checkpointer.delete_checkpoints(num_to_keep=1, max_keys=["acc"], importance_keys=[])
    assert remaining(checkpointer) == [1]


def test_delete_nan_importance_not_kept_as_best(checkpointer):
    save_all(checkpointer, indexed([0.2, math.nan, math.nan], "acc"))
    checkpointer.delete_checkpoints(num_to_keep=2, importance_keys=[lambda ckpt: ckpt.meta["acc"]])
    assert remaining(checkpointer) == [0]


def test_delete_predicate_restricts_deletion(checkpointer):
    save_all(checkpointer, indexed([None] * 6, "x"))
    checkpointer.delete_checkpoints(num_to_keep=1, ckpt_predicate=lambda ckpt: ckpt.meta["i"] % 2 == 0)
    # Odd checkpoints may not be deleted and take no place among the kept.
    assert remaining(checkpointer) == [1, 3, 4, 5]


def test_delete_predicate_with_zero_to_keep(checkpointer):
    save_all(checkpointer, indexed([None] * 4, "x"))
    checkpointer.delete_checkpoints(num_to_keep=0, ckpt_predicate=lambda ckpt: ckpt.meta["i"] < 2)
    assert remaining(checkpointer) == [2, 3]


@pytest.mark.parametrize("num_to_keep", [-1, -5])
def test_delete_negative_num_to_keep(checkpointer, num_to_keep):
    save_all(checkpointer, indexed([None] * 2, "x"))
    with pytest.raises(ValueError, match="num_to_keep"):
        checkpointer.delete_checkpoints(num_to_keep=num_to_keep)
    assert remaining(checkpointer) == [0, 1]


def test_delete_is_keyword_only(checkpointer):
    with pytest.raises(TypeError):
        checkpointer.delete_checkpoints(1)


@pytest.mark.parametrize(
    "arguments",
    [{"max_keys": "acc"}, {"min_keys": "acc"}, {"importance_keys": ckpt_recency}],
    ids=["max_keys", "min_keys", "importance_keys"],
)
def test_single_key_instead_of_list_raises(checkpointer, arguments):
    save_all(checkpointer, indexed([0.9, 0.1, 0.2], "acc"))
    with pytest.raises(TypeError, match=next(iter(arguments))):
        checkpointer.delete_checkpoints(**arguments)
    with pytest.raises(TypeError, match=next(iter(arguments))):
        checkpointer.save_and_keep_only(meta={"i": 3}, **arguments)
    assert remaining(checkpointer) == [0, 1, 2]


# save_and_keep_only


def test_save_and_keep_only_default_keeps_newest(checkpointer):
    for i in range(4):
        result = checkpointer.save_and_keep_only(meta={"i": i})
        assert result is None
        assert remaining(checkpointer) == [i]


def test_save_and_keep_only_num_to_keep(checkpointer):
    expected = [[0], [0, 1], [1, 2], [2, 3]]
    for i in range(4):
        checkpointer.save_and_keep_only(meta={"i": i}, num_to_keep=2)
        assert remaining(checkpointer) == expected[i]


def test_save_and_keep_only_max_keys_and_recent(checkpointer):
    accuracies = [0.5, 0.9, 0.3, 0.4]
    expected = [[0], [1], [1, 2], [1, 3]]
    for i, acc in enumerate(accuracies):
        checkpointer.save_and_keep_only(meta={"i": i, "acc": acc}, max_keys=["acc"])
        assert remaining(checkpointer) == expected[i]


def test_save_and_keep_only_without_recent(checkpointer):
    losses = [0.5, 0.9, 0.3, 0.4]
    expected = [[0], [0], [2], [2]]
    for i, loss in enumerate(losses):
        checkpointer.save_and_keep_only(meta={"i": i, "loss": loss}, min_keys=["loss"], keep_recent=False)
        assert remaining(checkpointer) == expected[i]


def test_save_and_keep_only_importance_keys(checkpointer):
    scores = [3, 1, 2]
    expected = [[0], [0, 1], [0, 2]]
    for i, score in enumerate(scores):
        checkpointer.save_and_keep_only(
            meta={"i": i, "score": score},
            importance_keys=[lambda ckpt: ckpt.meta["score"]],
        )
        assert remaining(checkpointer) == expected[i]


def test_save_and_keep_only_predicate(checkpointer):
    for i in range(5):
        checkpointer.save_and_keep_only(meta={"i": i}, ckpt_predicate=lambda ckpt: ckpt.meta["i"] != 0)
    assert remaining(checkpointer) == [0, 4]


def test_save_and_keep_only_no_keys_deletes_new_one(checkpointer):
    checkpointer.save_and_keep_only(meta={"i": 0}, keep_recent=False)
    assert remaining(checkpointer) == []


def test_save_and_keep_only_negative_num_saves_nothing(checkpointer):
    with pytest.raises(ValueError, match="num_to_keep"):
        checkpointer.save_and_keep_only(meta={"i": 0}, num_to_keep=-1)
    assert remaining(checkpointer) == []


# Arguments are never modified


def signature_defaults(function):
    return {
        name: (list(p.default) if isinstance(p.default, (list, tuple)) else p.default)
        for name, p in inspect.signature(function).parameters.items()
    }


def test_default_arguments_not_modified(checkpointer):
    methods = [
        Checkpointer.save_checkpoint,
        Checkpointer.save_and_keep_only,
        Checkpointer.delete_checkpoints,
        Checkpointer.find_checkpoints,
    ]
    before = [signature_defaults(method) for method in methods]
    for i in range(2):
        checkpointer.save_and_keep_only(meta={"i": i, "acc": float(i)})
        checkpointer.save_and_keep_only(meta={"i": 10 + i, "acc": float(i)}, max_keys=["acc"])
        checkpointer.delete_checkpoints()
        checkpointer.find_checkpoints()
    after = [signature_defaults(method) for method in methods]
    assert after == before


def test_default_importance_keys_stay_empty_between_calls(checkpointer):
    # A recency key appended to a shared default would keep the newest here.
    checkpointer.save_and_keep_only(meta={"i": 0, "acc": 0.9})
    checkpointer.save_and_keep_only(meta={"i": 1, "acc": 0.1}, max_keys=["acc"], keep_recent=False)
    assert remaining(checkpointer) == [0]


def test_caller_arguments_not_modified(checkpointer):
    meta = {"i": 0, "acc": 0.5}
    importance_keys = [lambda ckpt: ckpt.meta["acc"]]
    max_keys = ["acc"]
    min_keys = ["acc"]
    copies = (dict(meta), list(importance_keys), list(max_keys), list(min_keys))
    for _ in range(2):
        checkpointer.save_and_keep_only(
            meta=meta,
            importance_keys=importance_keys,
            max_keys=max_keys,
            min_keys=min_keys,
        )
        checkpointer.save_checkpoint(meta=meta)
        checkpointer.delete_checkpoints(
            importance_keys=importance_keys,
            max_keys=max_keys,
            min_keys=min_keys,
        )
    assert (meta, importance_keys, max_keys, min_keys) == copies


def test_constructor_mappings_not_modified(tmp_path):
    recoverables = {"model": torch.nn.Linear(1, 1)}
    load_hooks = {}
    save_hooks = {}
    checkpointer = Checkpointer(tmp_path, recoverables, custom_load_hooks=load_hooks, custom_save_hooks=save_hooks)

    def saver(obj, path):
        path.write_text(str(obj), encoding="utf-8")

    def loader(obj, path):
        pass

    checkpointer.add_recoverable("extra", object(), custom_load_hook=loader, custom_save_hook=saver)
    checkpointer.add_recoverables({"other": torch.nn.Linear(1, 1)})
    assert list(recoverables) == ["model"]
    assert load_hooks == {}
    assert save_hooks == {}
