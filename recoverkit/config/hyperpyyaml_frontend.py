"""The HyperPyYAML front-end: SpeechBrain-style files with ``!new:``, ``!ref`` and ``!name:`` tags."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping
from typing import Any

from recoverkit.config.origin import ConfigOrigin
from recoverkit.errors import ConfigError

__all__ = ["HYPERPYYAML_SUFFIXES", "is_hyperpyyaml", "load_hyperpyyaml_file"]

#: File names ending in one of these are read as HyperPyYAML whatever their content.
HYPERPYYAML_SUFFIXES = (".hpy.yaml", ".hpy.yml", ".hparams.yaml", ".hparams.yml")

# A HyperPyYAML tag outside a comment: !new:, !name:, !apply:, !module:, !include:, !ref, !copy, !tuple.
_TAG = re.compile(r"^[^#\n]*?(?<![\w!])!(?:new|name|apply|applyref|module|include):|^[^#\n]*?(?<![\w!])!(?:ref|copy|tuple|PLACEHOLDER)\b", re.MULTILINE)


def is_hyperpyyaml(path: pathlib.Path, text: str) -> bool:
    """Return True if the file should be read as HyperPyYAML rather than Hydra YAML.

    It is, if its name ends in one of :data:`HYPERPYYAML_SUFFIXES` or its
    text uses a HyperPyYAML tag (``!new:``, ``!ref``, ``!name:`` and the
    others) outside a comment.

    Example
    -------
    >>> is_hyperpyyaml(pathlib.Path("train.yaml"), "model: !new:torch.nn.Linear")
    True
    >>> is_hyperpyyaml(pathlib.Path("train.yaml"), "model: {_target_: torch.nn.Linear}  # not !new:")
    False
    """
    if path.name.endswith(HYPERPYYAML_SUFFIXES):
        return True
    return _TAG.search(text) is not None


def load_hyperpyyaml_file(path: pathlib.Path, text: str, overrides: Any, origin: ConfigOrigin) -> dict[str, Any]:
    """Load a HyperPyYAML file, turning every loading error into one ConfigError.

    Parameters
    ----------
    overrides : dict, str or sequence
        A dict or YAML string, as ``load_hyperpyyaml`` takes them, or
        ``key=value`` strings, which are converted to a dict.

    Raises
    ------
    ConfigError
        If the YAML is malformed, a tag names a class or function that
        cannot be imported or called, a ``!ref`` is invalid, or an override
        names a key the file lacks.
    """
    from hyperpyyaml import load_hyperpyyaml

    override_arg = _overrides_argument(overrides, origin)
    try:
        loaded = load_hyperpyyaml(text, overrides=override_arg)
    except Exception as error:  # noqa: BLE001 - every loading error becomes one ConfigError
        if not _is_config_error(error):
            raise
        if _is_yaml_or_import_error(error):
            raise _loading_error(error, text, origin) from None
        # A TypeError or ValueError may come from the constructor a tag calls, so keep it as the cause.
        raise _loading_error(error, text, origin) from error
    if not isinstance(loaded, Mapping):
        raise origin.error("<top level>", f"the file contains a {type(loaded).__name__}, not a mapping.",
                           "a mapping of names to values.")
    return dict(loaded)


def _overrides_argument(overrides: Any, origin: ConfigOrigin) -> Any:
    if overrides is None or isinstance(overrides, (str, Mapping)):
        return overrides or None
    result: dict[str, Any] = {}
    for override in overrides:
        if not isinstance(override, str) or "=" not in override:
            raise ConfigError(
                f"Invalid override {override!r} for {origin.label}: expected key=value, a dict or a YAML string.",
                source=origin.label,
            )
        import yaml

        key, _, value = override.partition("=")
        target = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = yaml.safe_load(value) if value.strip() else None
    return result or None


def _is_config_error(error: Exception) -> bool:
    if isinstance(error, (ImportError, AttributeError, TypeError, ValueError, KeyError)):
        return True
    module = type(error).__module__
    return module.startswith(("ruamel", "yaml"))


def _is_yaml_or_import_error(error: Exception) -> bool:
    return isinstance(error, ImportError) or type(error).__module__.startswith(("ruamel", "yaml"))


def _loading_error(error: Exception, text: str, origin: ConfigOrigin) -> ConfigError:
    detail = _describe(error)
    line = _error_line(error, text)
    key_path = key_path_at_line(text, line) if line is not None else "<unknown key>"
    where = f" (line {line + 1})" if line is not None else ""
    return origin.error(
        key_path,
        f"loading the HyperPyYAML file failed{where}: {detail}",
        "!new:/!name: tags naming importable classes and functions with the arguments they take, "
        "!ref <key> references to keys that exist, and overrides of existing keys.",
    )


def _describe(error: Exception) -> str:
    if isinstance(error, TypeError) and len(error.args) == 2:
        return f"{error.args[0]}: {error.args[1]}."
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines else type(error).__name__
    return f"{type(error).__name__}: {text}".rstrip(".") + "."


def _error_line(error: Exception, text: str) -> int | None:
    mark = getattr(error, "problem_mark", None)
    if mark is not None and getattr(mark, "line", None) is not None:
        return int(mark.line)
    # Import and call errors name the class or reference; find the line that names it.
    message = " ".join(str(arg) for arg in error.args)
    candidates = re.findall(r"[\w.]+\.[\w]+|\"[\w.]+\"", message)
    lines = text.splitlines()
    for candidate in candidates:
        needle = candidate.strip('"')
        for number, line in enumerate(lines):
            if needle in line.split("#", 1)[0]:
                return number
    return None


def key_path_at_line(text: str, line_number: int) -> str:
    """Return the dotted key path of the YAML mapping entry on (or enclosing) ``line_number``.

    Example
    -------
    >>> key_path_at_line("a:\\n  b:\\n    c: 1\\n", 2)
    'a.b.c'
    """
    lines = text.splitlines()
    if not 0 <= line_number < len(lines):
        return "<unknown key>"
    path: list[str] = []
    indent_limit: int | None = None
    for line in reversed(lines[: line_number + 1]):
        stripped = line.split("#", 1)[0].rstrip()
        match = re.match(r"^(\s*)(?:-\s+)?([\w.-]+)\s*:", stripped)
        if not match:
            continue
        indent = len(match.group(1))
        if indent_limit is None or indent < indent_limit:
            path.append(match.group(2))
            indent_limit = indent
            if indent == 0:
                break
    return ".".join(reversed(path)) if path else "<unknown key>"
