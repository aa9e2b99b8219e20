"""The Hydra/OmegaConf front-end: composing a recipe and reading its ``checkpointer`` section."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from recoverkit.config.origin import SECTION, ConfigOrigin
from recoverkit.errors import ConfigError

__all__ = ["BUILTIN_CONF_DIR", "compose_config", "read_section", "search_dirs_for"]

#: The config root shipped in the repository (``conf/``), searched after a recipe's own folder.
# NOTE: it exists in a source checkout or an editable install; a wheel does
# not ship it, so there recipes must bring their own groups.
BUILTIN_CONF_DIR = pathlib.Path(__file__).resolve().parents[2] / "conf"


def search_dirs_for(config_dir: pathlib.Path | None) -> tuple[pathlib.Path, ...]:
    """Return the config roots searched for groups: the recipe's folder, then ``conf/``."""
    dirs = [config_dir] if config_dir is not None else []
    if BUILTIN_CONF_DIR.is_dir() and BUILTIN_CONF_DIR not in dirs:
        dirs.append(BUILTIN_CONF_DIR)
    return tuple(dirs)


def compose_config(path: str | pathlib.Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the Hydra config at ``path`` with command-line style ``overrides``, without running it.

    The folder of ``path`` is the primary config root, and the repository's
    ``conf/`` folder is added to the search path, so a recipe can pick the
    shipped groups (``retention=best_valid_loss``) without copying them.

    Parameters
    ----------
    path : str or pathlib.Path
        The YAML file of the primary config.
    overrides : sequence of str
        Hydra overrides such as ``retention.num_to_keep=3`` or ``schedule=preemptible``.

    Returns
    -------
    DictConfig
        The composed config, without the ``hydra`` node.

    Raises
    ------
    ConfigError
        If the file does not exist, an override is malformed, or a group
        option is missing.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    config_path = pathlib.Path(path).expanduser().resolve()
    label = str(path)
    if not config_path.is_file():
        raise ConfigError(f"Invalid config {label}: the file does not exist.", source=label)
    overrides = list(overrides)
    _check_overrides(overrides, label)
    search_override = _search_path_override(config_path)
    # Inside a Hydra app (such as a multirun job) GlobalHydra is already set
    # up, so compose with a fresh one and put the app's back afterwards.
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_path.parent), version_base=None):
            return compose(config_name=config_path.stem, overrides=[*overrides, *search_override])
    except yaml.YAMLError as error:
        raise _yaml_error(error, config_path, label) from None
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(
            f"Invalid config {label}: composing it with overrides {overrides} failed: "
            f"{_first_lines(error)} Accepted: keys and group options that exist in the config "
            f"or its search path ({', '.join(str(d) for d in search_dirs_for(config_path.parent))}).",
            source=label,
        ) from None
    finally:
        restore_gh_from_backup(backup)


def _check_overrides(overrides: list[str], label: str) -> None:
    for override in overrides:
        if not isinstance(override, str) or "=" not in override:
            raise ConfigError(
                f"Invalid override {override!r} for {label}: expected key=value, such as "
                "retention.num_to_keep=3 or schedule=preemptible.",
                source=label,
            )


def _search_path_override(config_path: pathlib.Path) -> list[str]:
    """Return an override that appends ``conf/`` to the recipe's own ``hydra.searchpath``."""
    if not BUILTIN_CONF_DIR.is_dir() or config_path.parent == BUILTIN_CONF_DIR:
        return []
    try:
        own = OmegaConf.load(config_path)
        existing = OmegaConf.select(own, "hydra.searchpath", default=None) if isinstance(own, DictConfig) else None
    except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError):
        existing = None  # Composing reports a broken file with a better message.
    entries = [str(item) for item in existing] if isinstance(existing, ListConfig) else []
    entries.append(f"file://{BUILTIN_CONF_DIR}")
    quoted = ",".join(f"'{entry}'" for entry in entries)
    return [f"hydra.searchpath=[{quoted}]"]


def _yaml_error(error: yaml.YAMLError, path: pathlib.Path, label: str) -> ConfigError:
    """Describe a YAML syntax error with its file, line and the key path around it.

    The broken file may be a group option that the recipe includes, so the
    file named by the error's mark is read when it exists.
    """
    from recoverkit.config.hyperpyyaml_frontend import key_path_at_line

    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or _first_lines(error)
    if mark is None:
        return ConfigError(f"Invalid config {label}: it is not valid YAML: {problem}.", source=label)
    marked = pathlib.Path(str(getattr(mark, "name", "")))
    broken = marked if marked.is_file() else path
    lines = broken.read_text(encoding="utf-8", errors="replace").splitlines()
    key_path = key_path_at_line("\n".join(lines), min(mark.line, max(len(lines) - 1, 0)))
    where = label if broken == path else f"{label} (included file {broken})"
    return ConfigError(
        f"Invalid config {where}: {key_path}: the file is not valid YAML at line {mark.line + 1}, "
        f"column {mark.column + 1}: {problem}. Accepted: YAML mappings, lists and scalars; "
        "check brackets, quotes and indentation there.",
        source=label,
        key_path=key_path,
    )


def _first_lines(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = " ".join(lines[:3]) if lines else type(error).__name__
    return text if text.endswith(".") else text + "."


def read_section(config: DictConfig, origin: ConfigOrigin) -> dict[str, Any]:
    """Return the ``checkpointer`` section as plain data for validation.

    Every value is resolved except the object references of recoverables
    (``${model}`` or ``ref: ${model}``), which stay interpolation strings so
    the builder can pass the one object it built for that key.

    Raises
    ------
    ConfigError
        If the section is missing or an interpolation cannot be resolved.
    """
    if SECTION not in config:
        raise origin.error(
            SECTION,
            "the section is missing.",
            "a checkpointer mapping with at least checkpoints_dir, or pick one with checkpointer=default.",
        )
    section = _resolved_child(config, SECTION, SECTION, origin, keep_containers=True)
    if not isinstance(section, DictConfig):
        return _plain(section)
    result: dict[str, Any] = {}
    for key in section:
        key = str(key)
        path = f"{SECTION}.{key}"
        if key == "recoverables":
            result[key] = _read_recoverables(section, origin)
        else:
            result[key] = _plain(_resolved_child(section, key, path, origin))
    return result


def _read_recoverables(section: DictConfig, origin: ConfigOrigin) -> Any:
    recoverables = _resolved_child(section, "recoverables", f"{SECTION}.recoverables", origin, keep_containers=True)
    if not isinstance(recoverables, DictConfig):
        return _plain(recoverables)
    result: dict[str, Any] = {}
    for name in recoverables:
        name = str(name)
        path = f"{SECTION}.recoverables.{name}"
        if OmegaConf.is_interpolation(recoverables, name):
            result[name] = _raw(recoverables, name)
            continue
        entry = recoverables[name]
        if not isinstance(entry, DictConfig):
            result[name] = _plain(entry)
            continue
        result[name] = {
            str(field): _raw(entry, field) if field == "ref" and OmegaConf.is_interpolation(entry, field)
            else _plain(_resolved_child(entry, field, f"{path}.{field}", origin))
            for field in entry
        }
    return result


def _raw(node: DictConfig, key: Any) -> Any:
    return OmegaConf.to_container(node, resolve=False)[key]  # type: ignore[index]


def _resolved_child(node: DictConfig, key: str, path: str, origin: ConfigOrigin, keep_containers: bool = False) -> Any:
    try:
        value = node[key]
        if not keep_containers and isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
        return value
    except OmegaConfBaseException as error:
        raise origin.error(
            path,
            f"the value cannot be resolved ({str(error).strip().splitlines()[0]}).",
            "values and ${key.path} interpolations of keys that exist in the config.",
        ) from None


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
