"""The meta file ``CKPT.yaml``: conversion of user values, writing and safe reading.

The file is plain YAML that SpeechBrain reads too. Besides the caller's values
it always contains ``unixtime`` and ``end-of-epoch``, and recoverkit adds the
``recoverkit-files`` manifest (size and checksum of every parameter file),
which is kept out of :attr:`Checkpoint.meta`.
"""

from __future__ import annotations

import datetime
import math
import numbers
from collections.abc import Mapping
from typing import Any

import yaml

from recoverkit.errors import InvalidMetaError

__all__ = [
    "END_OF_EPOCH_KEY",
    "MANIFEST_KEY",
    "UNIXTIME_KEY",
    "dump_meta",
    "parse_meta",
    "to_plain_meta",
]

UNIXTIME_KEY = "unixtime"
END_OF_EPOCH_KEY = "end-of-epoch"
MANIFEST_KEY = "recoverkit-files"



class _SafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader that also reads the tuples SpeechBrain's ``yaml.dump`` writes.

    SpeechBrain writes meta files with PyYAML's full dumper, which tags a
    tuple as ``!!python/tuple``. Tuples hold plain values only, so reading
    them as lists is safe; every other python tag is still rejected.
    """


def _construct_tuple_as_list(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
    return loader.construct_sequence(node, deep=True)


_SafeLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple_as_list)
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_PLAIN_TYPES = (str, bool, int, float, type(None), datetime.date, datetime.datetime)


def to_plain_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``meta`` that safe YAML can store, or raise InvalidMetaError.

    One-element tensors and NumPy scalars become Python numbers. Lists,
    tuples and dicts are converted recursively. Any other object is rejected,
    and the error names the key, so nothing is written for a bad value.
    """
    if not isinstance(meta, Mapping):
        raise InvalidMetaError(
            f"meta must be a mapping of names to values, got {type(meta).__name__}."
        )
    plain = {}
    for key, value in meta.items():
        if not isinstance(key, str):
            raise InvalidMetaError(
                f"Invalid meta key {key!r}: keys must be strings."
            )
        if key == MANIFEST_KEY:
            raise InvalidMetaError(
                f"Invalid meta key {key!r}: the name is reserved for the file "
                "manifest that recoverkit writes. Choose another key."
            )
        plain[key] = _to_plain_value(value, key)
    return plain


def _to_plain_value(value: Any, key_path: str) -> Any:
    if type(value) in _PLAIN_TYPES:
        return value
    converted = _number_from_array_scalar(value, key_path)
    if converted is not None:
        return converted
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        result = {}
        for sub_key, sub_value in value.items():
            if not isinstance(sub_key, (str, int)):
                raise InvalidMetaError(
                    f"Invalid meta key {key_path}.{sub_key!r}: nested keys must be "
                    "strings or integers."
                )
            result[sub_key] = _to_plain_value(sub_value, f"{key_path}.{sub_key}")
        return result
    if isinstance(value, (list, tuple)):
        return [
            _to_plain_value(item, f"{key_path}[{index}]")
            for index, item in enumerate(value)
        ]
    raise InvalidMetaError(
        f"Invalid meta value at {key_path!r}: {type(value).__module__}."
        f"{type(value).__qualname__} cannot be stored in the YAML meta file. "
        "Pass numbers, strings, booleans, None, or lists and dicts of them "
        "(for a path, pass str(path))."
    )


def _number_from_array_scalar(value: Any, key_path: str) -> int | float | bool | None:
    """Convert a one-element tensor or NumPy scalar to a Python number."""
    type_module = type(value).__module__
    if type_module.startswith("torch"):
        import torch

        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise InvalidMetaError(
                    f"Invalid meta value at {key_path!r}: a tensor of shape {tuple(value.shape)} "
                    "cannot be stored as a number. Pass a one-element tensor, "
                    "or call .tolist() on it."
                )
            return value.detach().cpu().item()
    if type_module == "numpy":
        import numpy

        if isinstance(value, numpy.generic):
            return value.item()
        if isinstance(value, numpy.ndarray) and value.ndim == 0:
            return value.item()
    return None


def dump_meta(meta: Mapping[str, Any]) -> str:
    """Return the YAML text of a meta file (values must be plain already)."""
    text = yaml.dump(dict(meta), Dumper=_SafeDumper, sort_keys=False)
    return "# yamllint disable\n" + text


def parse_meta(text: str) -> dict[str, Any]:
    """Parse the text of a meta file with a safe loader.

    Raises
    ------
    ValueError
        If the text is not YAML or not a mapping.
    """
    try:
        loaded = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as error:
        raise ValueError(f"meta file is not valid YAML: {_describe_yaml_error(error)}") from error
    if not isinstance(loaded, dict):
        raise ValueError(
            f"meta file must contain a mapping, got {type(loaded).__name__}"
        )
    return loaded


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    """Return PyYAML's problem and its position as one line, without the ``<unicode string>`` lines."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem is None:
        return " ".join(str(error).split())
    mark = error.problem_mark
    position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{error.problem}{position}"


def is_nan(value: Any) -> bool:
    """Return True for a float NaN (the value never counts as best)."""
    return isinstance(value, float) and math.isnan(value)
