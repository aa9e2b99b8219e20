"""The public API matches SpeechBrain's checkpoints module name for name."""

import inspect

import pytest

import recoverkit
import recoverkit.checkpoints

# Parameter names of speechbrain.utils.checkpoints, from its API reference.
FUNCTION_PARAMETERS = {
    "map_old_state_dict_weights": ["state_dict", "mapping"],
    "hook_on_loading_state_dict_checkpoint": ["state_dict"],
    "torch_recovery": ["obj", "path", "end_of_epoch"],
    "torch_patched_state_dict_load": ["path", "device"],
    "torch_save": ["obj", "path"],
    "torch_parameter_transfer": ["obj", "path"],
    "mark_as_saver": ["method"],
    "mark_as_loader": ["method"],
    "mark_as_transfer": ["method"],
    "register_checkpoint_hooks": ["cls", "save_on_main_only"],
    "get_default_hook": ["obj", "default_hooks"],
    "ckpt_recency": ["ckpt"],
    "average_state_dicts": ["state_dicts"],
    "average_checkpoints": ["checkpoint_list", "recoverable_name", "parameter_loader", "averager"],
}

CHECKPOINTER_PARAMETERS = {
    "__init__": [
        "self",
        "checkpoints_dir",
        "recoverables",
        "custom_load_hooks",
        "custom_save_hooks",
        "allow_partial_load",
    ],
    "add_recoverable": [
        "self",
        "name",
        "obj",
        "custom_load_hook",
        "custom_save_hook",
        "optional_load",
    ],
    "add_recoverables": ["self", "recoverables"],
    "save_checkpoint": ["self", "meta", "end_of_epoch", "name", "verbosity"],
    "save_and_keep_only": [
        "self",
        "meta",
        "end_of_epoch",
        "name",
        "num_to_keep",
        "keep_recent",
        "importance_keys",
        "max_keys",
        "min_keys",
        "ckpt_predicate",
        "verbosity",
    ],
    "find_checkpoint": ["self", "importance_key", "max_key", "min_key", "ckpt_predicate"],
    "find_checkpoints": [
        "self",
        "importance_key",
        "max_key",
        "min_key",
        "ckpt_predicate",
        "max_num_checkpoints",
    ],
    "recover_if_possible": ["self", "importance_key", "max_key", "min_key", "ckpt_predicate"],
    "load_checkpoint": ["self", "checkpoint"],
    "list_checkpoints": ["self"],
    "delete_checkpoints": [
        "self",
        "num_to_keep",
        "min_keys",
        "max_keys",
        "importance_keys",
        "ckpt_predicate",
        "verbosity",
    ],
}

OTHER_NAMES = [
    "Checkpoint",
    "Checkpointer",
    "DEFAULT_SAVE_HOOKS",
    "DEFAULT_LOAD_HOOKS",
    "DEFAULT_TRANSFER_HOOKS",
]

ALL_NAMES = sorted([*FUNCTION_PARAMETERS, *OTHER_NAMES])


def assert_speechbrain_parameters(function, expected):
    """SpeechBrain's parameters come first, in order; additions need defaults."""
    parameters = inspect.signature(function).parameters
    names = list(parameters)
    assert names[: len(expected)] == expected
    for extra in names[len(expected) :]:
        assert parameters[extra].default is not inspect.Parameter.empty, extra


@pytest.mark.parametrize("name", ALL_NAMES)
def test_name_importable_from_both_modules(name):
    top_level = getattr(recoverkit, name)
    compat = getattr(recoverkit.checkpoints, name)
    assert top_level is compat
    assert name in recoverkit.__all__
    assert name in recoverkit.checkpoints.__all__


def test_ready_recoverables_exported_at_top_level():
    assert "EpochCounter" in recoverkit.__all__
    assert "RNGState" in recoverkit.__all__


@pytest.mark.parametrize("name", sorted(FUNCTION_PARAMETERS))
def test_function_parameter_names(name):
    assert_speechbrain_parameters(getattr(recoverkit, name), FUNCTION_PARAMETERS[name])


@pytest.mark.parametrize("method", sorted(CHECKPOINTER_PARAMETERS))
def test_checkpointer_parameter_names(method):
    function = getattr(recoverkit.Checkpointer, method)
    assert_speechbrain_parameters(function, CHECKPOINTER_PARAMETERS[method])


def test_delete_checkpoints_keyword_only():
    parameters = inspect.signature(recoverkit.Checkpointer.delete_checkpoints).parameters
    kinds = {name: p.kind for name, p in parameters.items() if name != "self"}
    assert set(kinds.values()) == {inspect.Parameter.KEYWORD_ONLY}


def test_delete_checkpoints_defaults():
    parameters = inspect.signature(recoverkit.Checkpointer.delete_checkpoints).parameters
    assert parameters["num_to_keep"].default == 1
    assert parameters["min_keys"].default is None
    assert parameters["max_keys"].default is None
    assert list(parameters["importance_keys"].default) == [recoverkit.ckpt_recency]
    assert parameters["ckpt_predicate"].default is None
    assert parameters["verbosity"].default == 20


def test_save_and_keep_only_defaults():
    parameters = inspect.signature(recoverkit.Checkpointer.save_and_keep_only).parameters
    assert parameters["end_of_epoch"].default is True
    assert parameters["name"].default is None
    assert parameters["num_to_keep"].default == 1
    assert parameters["keep_recent"].default is True
    assert list(parameters["importance_keys"].default) == []
    assert list(parameters["max_keys"].default) == []
    assert list(parameters["min_keys"].default) == []
    assert parameters["verbosity"].default == 20


def test_other_defaults():
    assert inspect.signature(recoverkit.torch_patched_state_dict_load).parameters["device"].default == "cpu"
    register = inspect.signature(recoverkit.register_checkpoint_hooks).parameters
    assert register["save_on_main_only"].default is True
    save = inspect.signature(recoverkit.Checkpointer.save_checkpoint).parameters
    assert save["end_of_epoch"].default is True
    assert save["verbosity"].default == 20
    init = inspect.signature(recoverkit.Checkpointer).parameters
    assert init["allow_partial_load"].default is False
    assert inspect.signature(recoverkit.Checkpointer.add_recoverable).parameters["optional_load"].default is False


def test_checkpoint_is_named_tuple():
    assert recoverkit.Checkpoint._fields == ("path", "meta", "paramfiles")
    checkpoint = recoverkit.Checkpoint("p", {"unixtime": 3.0}, {})
    assert checkpoint.path == "p"
    assert recoverkit.ckpt_recency(checkpoint) == 3.0


def test_hook_tables_are_dicts():
    for table in ("DEFAULT_SAVE_HOOKS", "DEFAULT_LOAD_HOOKS", "DEFAULT_TRANSFER_HOOKS"):
        assert type(getattr(recoverkit, table)) is dict
