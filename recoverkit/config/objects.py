"""Building the objects of a Hydra config (``_target_`` nodes) so they can be shared.

Hydra's own ``instantiate`` builds a fresh object for every ``${model}``
interpolation, so the model passed to the optimizer and the model saved by
the checkpointer would be two different objects. This builder makes one
object per config node: an interpolation that is the whole value and names
a ``_target_`` node (or an entry of ``objects=``) passes the same object.
It supports ``_target_``, ``_args_`` and ``_partial_``; other values are
resolved by OmegaConf as usual.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from recoverkit.config.imports import import_by_path
from recoverkit.config.origin import ConfigOrigin
from recoverkit.config.section import INTERPOLATION

__all__ = ["ObjectBuilder", "parameters_of"]

logger = logging.getLogger(__name__)

TARGET_KEY = "_target_"
ARGS_KEY = "_args_"
PARTIAL_KEY = "_partial_"
# Keys of Hydra's instantiate that this builder reads or accepts without effect.
_IGNORED_KEYS = ("_recursive_", "_convert_")


def parameters_of(module: Any) -> list[Any]:
    """Return ``list(module.parameters())``, for an optimizer's ``params`` in a config.

    Example
    -------
    >>> import torch
    >>> len(parameters_of(torch.nn.Linear(2, 3)))
    2
    """
    return list(module.parameters())


class ObjectBuilder:
    """Builds the ``_target_`` nodes of a config, each once, in dependency order.

    Parameters
    ----------
    config : DictConfig
        The composed config.
    origin : ConfigOrigin
        Names the file in error messages.
    supplied : mapping, optional
        Objects passed in by the caller. A config key with the same name is
        not built, and interpolations of that name receive the supplied object.
    """

    def __init__(self, config: DictConfig, origin: ConfigOrigin, supplied: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.origin = origin
        self.supplied = dict(supplied or {})
        self.built: dict[str, Any] = {}
        self._building: list[str] = []

    def is_object_path(self, path: str) -> bool:
        """Return True if ``path`` names a supplied object or a ``_target_`` node of the config."""
        if path in self.supplied:
            return True
        node = self._select(path)
        return isinstance(node, DictConfig) and TARGET_KEY in node

    def build_top_level(self) -> dict[str, Any]:
        """Build every top-level ``_target_`` node that no supplied object replaces.

        Returns
        -------
        dict
            Top-level key to object, for the supplied objects too.
        """
        result: dict[str, Any] = {}
        for key in self.config:
            key = str(key)
            if key in self.supplied or self.is_object_path(key):
                result[key] = self.get(key)
        for key, value in self.supplied.items():
            result.setdefault(key, value)
        return result

    def get(self, path: str) -> Any:
        """Return the object at ``path``, building it (and what it refers to) on first use."""
        if path in self.supplied:
            return self.supplied[path]
        if path in self.built:
            return self.built[path]
        if path in self._building:
            cycle = " -> ".join([*self._building, path])
            raise self.origin.error(path, f"the objects refer to each other in a cycle: {cycle}.",
                                    "references that form no cycle.")
        self._building.append(path)
        try:
            node = self._select(path)
            obj = self._build_node(node, path)
        finally:
            self._building.pop()
        self.built[path] = obj
        logger.debug("Built %s from %s", type(obj).__name__, path)
        return obj

    def _select(self, path: str) -> Any:
        try:
            return OmegaConf.select(self.config, path, throw_on_resolution_failure=False)
        except OmegaConfBaseException:
            return None

    def _build_node(self, node: Any, path: str) -> Any:
        if isinstance(node, DictConfig):
            if TARGET_KEY in node:
                return self._call_target(node, path)
            return {str(key): self._build_child(node, key, f"{path}.{key}") for key in node}
        if isinstance(node, ListConfig):
            return [self._build_child(node, index, f"{path}.{index}") for index in range(len(node))]
        return node

    def _build_child(self, parent: DictConfig | ListConfig, key: Any, path: str) -> Any:
        reference = self._object_reference(parent, key)
        if reference is not None:
            return self.get(reference)
        try:
            value = parent[key]
        except OmegaConfBaseException as error:
            raise self.origin.error(
                path,
                f"the value cannot be resolved ({str(error).strip().splitlines()[0]}).",
                "values and ${key.path} interpolations of keys that exist in the config.",
            ) from None
        if isinstance(value, (DictConfig, ListConfig)):
            return self._build_node(value, path)
        return value

    def _object_reference(self, parent: DictConfig | ListConfig, key: Any) -> str | None:
        if not OmegaConf.is_interpolation(parent, key):
            return None
        raw = OmegaConf.to_container(parent, resolve=False)[key]  # type: ignore[index]
        match = INTERPOLATION.fullmatch(str(raw).strip())
        if match and self.is_object_path(match.group(1)):
            return match.group(1)
        return None

    def _call_target(self, node: DictConfig, path: str) -> Any:
        target = import_by_path(node[TARGET_KEY], self.origin, f"{path}.{TARGET_KEY}")
        if not callable(target):
            raise self.origin.error(f"{path}.{TARGET_KEY}", f"{node[TARGET_KEY]!r} is not callable.",
                                    "the import path of a class or function.")
        args = self._build_child(node, ARGS_KEY, f"{path}.{ARGS_KEY}") if ARGS_KEY in node else []
        partial = bool(node.get(PARTIAL_KEY, False))
        kwargs = {
            str(key): self._build_child(node, key, f"{path}.{key}")
            for key in node
            if key not in (TARGET_KEY, ARGS_KEY, PARTIAL_KEY, *_IGNORED_KEYS)
        }
        if partial:
            return functools.partial(target, *args, **kwargs)
        try:
            return target(*args, **kwargs)
        except TypeError as error:
            raise self.origin.error(
                path,
                f"calling {node[TARGET_KEY]} failed: {error}.",
                f"the arguments that {node[TARGET_KEY]} takes.",
            ) from error
