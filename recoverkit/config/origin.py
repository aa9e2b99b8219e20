"""The origin of a config (a file or an in-memory object), and the one-message errors that name it."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

from omegaconf.errors import (
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from recoverkit.config.schema import describe_field
from recoverkit.errors import ConfigError

__all__ = ["ConfigOrigin"]

SECTION = "checkpointer"


@dataclass(frozen=True)
class ConfigOrigin:
    """The file (or in-memory object) a config was read from.

    Parameters
    ----------
    label : str
        The file path, or a description such as ``<dict>``.
    base_dir : pathlib.Path
        The folder against which relative keymap and transfer paths are
        tried after the current working directory.
    search_dirs : tuple of pathlib.Path
        Config roots whose ``keymap/`` group folders hold named keymaps.
    """

    label: str
    base_dir: pathlib.Path = field(default_factory=pathlib.Path.cwd)
    search_dirs: tuple[pathlib.Path, ...] = ()

    def error(self, key_path: str, problem: str, accepted: str = "") -> ConfigError:
        """Return a ConfigError whose message names the file, key path, problem and accepted values."""
        message = f"Invalid config {self.label}: {key_path}: {problem}"
        if accepted:
            message += f" Accepted: {accepted}"
        return ConfigError(message, source=self.label, key_path=key_path)

    def translate(self, error: OmegaConfBaseException, prefix: str = SECTION) -> ConfigError:
        """Turn an OmegaConf error raised while validating a section into a ConfigError."""
        relative = str(getattr(error, "full_key", "") or "")
        key_path = f"{prefix}.{relative}" if prefix and relative else (prefix or relative)
        expected, accepted_keys = describe_field(relative) if prefix == SECTION else ("a value", [])
        if isinstance(error, ConfigKeyError) and accepted_keys:
            return self.error(
                key_path,
                f"unknown key {getattr(error, 'key', relative)!r}.",
                f"{', '.join(accepted_keys)}.",
            )
        if isinstance(error, MissingMandatoryValue):
            return self.error(key_path, "the value is missing.", f"{expected}.")
        if isinstance(error, InterpolationResolutionError):
            return self.error(key_path, f"the interpolation cannot be resolved ({_first_line(error)}).",
                              "${key.path} interpolations of keys that exist in the config.")
        if isinstance(error, ValidationError):
            value = getattr(error, "value", None)
            return self.error(
                key_path,
                f"got {value!r} of type {type(value).__name__}.",
                f"{expected}.",
            )
        return self.error(key_path, f"{_first_line(error)}.", f"{expected}.")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
