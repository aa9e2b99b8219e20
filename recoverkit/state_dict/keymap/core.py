"""The Keymap: an ordered list of rules that maps one state dict onto another."""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import torch
import yaml

from recoverkit.errors import KeymapError
from recoverkit.state_dict.keymap.parse import RULE_KINDS, parse_rule
from recoverkit.state_dict.keymap.report import (
    DtypeMismatch,
    KeymapReport,
    MappedKey,
    ShapeMismatch,
)
from recoverkit.state_dict.keymap.rules import Rule, describe_change
from recoverkit.state_dict.keymap.state import Entry, RuleContext, rebuild_state

__all__ = ["BUILTIN_KEYMAPS", "Keymap", "resolve_keymap"]

logger = logging.getLogger(__name__)

#: Short names of the keymaps shipped with recoverkit.
BUILTIN_KEYMAPS: tuple[str, ...] = ("compile", "ddp")

_TOP_LEVEL_KEYS = ("name", "description", "rules")

TargetSpecs = dict[str, tuple[tuple[int, ...] | None, torch.dtype | None]]


class Keymap:
    """An ordered list of rules that renames, drops and transforms the entries of a state dict.

    Each rule gets the state dict as the rules before it left it. Keys that
    no rule matches pass through unchanged.

    Parameters
    ----------
    rules : sequence of Rule
        The rules, in the order they apply.
    name : str
        The name used in reports and error messages.
    description : str
        What the keymap is for.

    Example
    -------
    >>> keymap = Keymap.from_rules([{"prefix": {"from": "module.", "to": ""}}], name="strip")
    >>> state_dict = {"module.linear.weight": torch.zeros(2, 3)}
    >>> mapped, report = keymap.apply(state_dict)
    >>> list(mapped)
    ['linear.weight']
    >>> report.renamed[0].rules
    ('strip rule 1 (prefix)',)
    """

    def __init__(self, rules: Sequence[Rule] = (), name: str = "keymap", description: str = "") -> None:
        for rule in rules:
            if not isinstance(rule, Rule):
                raise KeymapError(
                    f"Keymap {name!r} got {type(rule).__name__} {rule!r} as a rule. Pass Rule "
                    "objects here, or use Keymap.from_rules for rules written as dicts."
                )
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.name = name
        self.description = description

    def __repr__(self) -> str:
        return f"Keymap({self.name!r}, {len(self.rules)} rules)"

    def __add__(self, other: Keymap) -> Keymap:
        if not isinstance(other, Keymap):
            return NotImplemented
        return Keymap(self.rules + other.rules, name=f"{self.name}+{other.name}")

    # Construction

    @classmethod
    def from_rules(cls, rules: Iterable[Mapping[str, Any]], name: str = "keymap", description: str = "") -> Keymap:
        """Build a keymap from rules written as dicts, in the syntax of keymap files.

        Raises
        ------
        KeymapError
            If a rule is invalid. The message names the rule and the keymap.
        """
        if isinstance(rules, (str, bytes, Mapping)) or not isinstance(rules, Iterable):
            raise KeymapError(
                f"The rules of keymap {name!r} must be a list of rules, got "
                f"{type(rules).__name__} {rules!r}."
            )
        parsed = [parse_rule(spec, name, index) for index, spec in enumerate(rules, start=1)]
        return cls(parsed, name=name, description=description)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Keymap:
        """Read a keymap YAML file.

        The file contains a mapping with ``rules`` (a list) and optionally
        ``name`` (default: the file name without extension) and
        ``description``, or just the list of rules.

        Raises
        ------
        KeymapError
            If the file is missing, is not valid YAML, or contains an invalid rule.
        """
        path = pathlib.Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise KeymapError(f"Cannot read keymap file {path}: {error.strerror or error}.") from error
        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise KeymapError(f"Keymap file {path} is not valid YAML: {error}") from error
        try:
            return cls.from_spec(content, default_name=path.stem)
        except KeymapError as error:
            raise KeymapError(f"In keymap file {path}: {error}") from error

    @classmethod
    def from_spec(cls, content: Any, default_name: str = "keymap") -> Keymap:
        """Build a keymap from the content of a keymap file: a mapping with ``rules``, or a list of rules."""
        if isinstance(content, Mapping):
            unknown = [key for key in content if key not in _TOP_LEVEL_KEYS]
            if unknown:
                raise KeymapError(
                    f"Invalid keymap {default_name!r}: unknown key(s) {unknown}. A keymap has "
                    f"{list(_TOP_LEVEL_KEYS)}; each rule goes in the 'rules' list."
                )
            if "rules" not in content:
                raise KeymapError(f"Invalid keymap {default_name!r}: the 'rules' list is missing.")
            name = content.get("name") or default_name
            description = content.get("description") or ""
            return cls.from_rules(content["rules"] or [], name=str(name), description=str(description))
        return cls.from_rules(content if content is not None else [], name=default_name)

    @classmethod
    def builtin(cls, name: str) -> Keymap:
        """Return a keymap shipped with recoverkit by its short name (see :data:`BUILTIN_KEYMAPS`).

        ``ddp`` removes the ``module.`` prefix that ``DistributedDataParallel``
        adds to every key, or adds it when the target has it. ``compile``
        does the same for the ``_orig_mod.`` prefix of ``torch.compile``.
        """
        if name not in BUILTIN_KEYMAPS:
            raise KeymapError(f"Unknown built-in keymap {name!r}. Built-in keymaps: {list(BUILTIN_KEYMAPS)}.")
        resource = resources.files("recoverkit.state_dict.keymap") / "builtin" / f"{name}.yaml"
        with resources.as_file(resource) as path:
            return cls.from_file(path)

    def to_spec(self) -> dict[str, Any]:
        """Return the keymap in the syntax of keymap files."""
        spec: dict[str, Any] = {"name": self.name}
        if self.description:
            spec["description"] = self.description
        spec["rules"] = [rule.to_spec() for rule in self.rules]
        return spec

    # Mapping

    def plan(self, source: Mapping[str, Any], target: Any = None) -> KeymapReport:
        """Run the keymap on the shapes of ``source`` only, and report the outcome.

        This is the dry run: tensors are replaced by meta tensors, so no
        data is copied. Two values that land on one key raise at once;
        everything else is recorded in the report. Call
        :meth:`KeymapReport.check` to turn it into errors and warnings.

        Parameters
        ----------
        source : mapping
            The state dict to map (key to tensor or other value).
        target : mapping or object with ``state_dict()``, optional
            The state dict, or the object, that the result will be loaded
            into. Without it, unused and missing keys and shape mismatches
            are not checked.

        Returns
        -------
        KeymapReport
            Where each key went, and how the result fits the target.

        Raises
        ------
        KeymapError
            If two values land on one key, or a rule cannot transform a tensor.
        """
        _check_source(source, self.name)
        target_specs = _target_specs(target)
        entries = {key: Entry(_as_meta(value), (key,)) for key, value in source.items()}
        state, context = self._run(entries, target_specs)
        return _build_report(self, state, context, target_specs)

    def apply(
        self,
        source: Mapping[str, Any],
        target: Any = None,
        strict: bool = True,
        origin: str = "",
    ) -> tuple[dict[str, Any], KeymapReport]:
        """Map ``source`` after a dry run that checks it against ``target``.

        Parameters
        ----------
        source : mapping
            The state dict to map. It is not modified.
        target : mapping or object with ``state_dict()``, optional
            What the result will be loaded into, as in :meth:`plan`.
        strict : bool
            If True, source keys the target lacks and target keys that no
            source key provides are errors. If False they are logged as
            warnings.
        origin : str
            Where ``source`` comes from, such as a file path, for messages.

        Returns
        -------
        (dict, KeymapReport)
            The mapped state dict and the dry-run report.

        Raises
        ------
        KeymapError
            On collisions and shape mismatches, and on unused or missing
            keys if ``strict``. Nothing is mapped in that case.
        """
        report = self.plan(source, target)
        report.check(strict=strict, origin=origin)
        entries = {key: Entry(value, (key,)) for key, value in source.items()}
        state, _context = self._run(entries, None if target is None else _target_specs(target))
        logger.info(
            "Keymap %r%s: %d keys renamed or transformed, %d unchanged, %d dropped",
            self.name,
            f" on {origin}" if origin else "",
            len(report.renamed),
            len(report.unchanged),
            len(report.dropped),
        )
        return {key: entry.value for key, entry in state.items()}, report

    def _run(self, state: dict[str, Entry], target: TargetSpecs | None) -> tuple[dict[str, Entry], RuleContext]:
        context = RuleContext(target=target)
        for rule in self.rules:
            changes = rule.changes(state, context)
            context.matches[rule.label] = context.matches.get(rule.label, 0) + len(changes)
            for change in changes:
                logger.debug("Keymap %r %s", self.name, describe_change(rule.label, change))
            if changes:
                state = rebuild_state(state, changes, rule.label)
        return state, context


def resolve_keymap(spec: Any, base_dir: str | os.PathLike | None = None) -> Keymap:
    """Turn any way of naming a keymap into a :class:`Keymap`.

    Accepted are a Keymap, a built-in name such as ``"ddp"``, the path of a
    keymap file, a mapping with ``rules``, a single rule as a mapping, and a
    list of any of these, applied in order. Relative paths are resolved
    against ``base_dir`` when it is given. OmegaConf containers work too.

    Raises
    ------
    KeymapError
        If the spec matches none of the above forms, or names a file that does not exist.

    Example
    -------
    >>> resolve_keymap(["ddp", "compile"]).name
    'ddp+compile'
    """
    spec = _to_plain(spec)
    if isinstance(spec, Keymap):
        return spec
    if isinstance(spec, str) and spec in BUILTIN_KEYMAPS:
        return Keymap.builtin(spec)
    if isinstance(spec, (str, os.PathLike)):
        return Keymap.from_file(_keymap_path(spec, base_dir))
    if isinstance(spec, Mapping):
        if "rules" in spec:
            return Keymap.from_spec(spec)
        return Keymap.from_rules([spec], name="inline")
    if isinstance(spec, Sequence) and not isinstance(spec, bytes):
        return _resolve_list(list(spec), base_dir)
    raise KeymapError(
        f"Cannot use {type(spec).__name__} {spec!r} as a keymap. Give a built-in name "
        f"{list(BUILTIN_KEYMAPS)}, a keymap file path, a mapping with 'rules', or a list of these."
    )


def _resolve_list(items: list[Any], base_dir: str | os.PathLike | None) -> Keymap:
    if not items:
        return Keymap(name="empty")
    parts: list[Keymap] = []
    inline: list[Any] = []
    for item in items:
        if isinstance(item, Mapping) and "rules" not in item and any(kind in item for kind in RULE_KINDS):
            inline.append(item)
            continue
        if inline:
            parts.append(Keymap.from_rules(inline, name="inline"))
            inline = []
        parts.append(resolve_keymap(item, base_dir))
    if inline:
        parts.append(Keymap.from_rules(inline, name="inline"))
    combined = parts[0]
    for part in parts[1:]:
        combined = combined + part
    return combined


def _keymap_path(spec: str | os.PathLike, base_dir: str | os.PathLike | None) -> pathlib.Path:
    path = pathlib.Path(spec)
    if base_dir is not None and not path.is_absolute():
        path = pathlib.Path(base_dir) / path
    if not path.is_file():
        raise KeymapError(
            f"Keymap {str(spec)!r} is neither a built-in keymap {list(BUILTIN_KEYMAPS)} "
            f"nor an existing file ({path} not found)."
        )
    return path


def _to_plain(spec: Any) -> Any:
    try:
        from omegaconf import OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return spec
    if OmegaConf.is_config(spec):
        return OmegaConf.to_container(spec, resolve=True)
    return spec


def _check_source(source: Any, name: str) -> None:
    if not isinstance(source, Mapping):
        raise KeymapError(
            f"Keymap {name!r} maps state dicts, got {type(source).__name__}. Pass a dict "
            "from key to tensor, such as module.state_dict()."
        )
    bad = [key for key in source if not isinstance(key, str)]
    if bad:
        raise KeymapError(
            f"Keymap {name!r} needs string keys, got {bad[:5]}. Keymaps apply to flat "
            "state dicts such as those of modules, not to optimizer state dicts."
        )


def _as_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    return value


def _target_specs(target: Any) -> TargetSpecs | None:
    if target is None:
        return None
    if not isinstance(target, Mapping) and callable(getattr(target, "state_dict", None)):
        target = target.state_dict()
    if not isinstance(target, Mapping):
        raise KeymapError(
            f"A keymap target must be a state dict or an object with state_dict(), got "
            f"{type(target).__name__}."
        )
    specs: TargetSpecs = {}
    for key, value in target.items():
        if isinstance(value, torch.Tensor):
            specs[key] = (tuple(value.shape), value.dtype)
        else:
            specs[key] = (None, None)
    return specs


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return None if dtype is None else str(dtype).replace("torch.", "")


def _build_report(
    keymap: Keymap, state: dict[str, Entry], context: RuleContext, target: TargetSpecs | None
) -> KeymapReport:
    mapped = []
    for key, entry in state.items():
        value = entry.value
        is_tensor = isinstance(value, torch.Tensor)
        mapped.append(
            MappedKey(
                target=key,
                sources=entry.sources,
                rules=entry.rules,
                shape=tuple(value.shape) if is_tensor else None,
                dtype=_dtype_name(value.dtype) if is_tensor else None,
            )
        )
    report = KeymapReport(
        keymap=keymap.name,
        mapped=mapped,
        dropped=dict(context.dropped),
        rule_matches={rule.label: context.matches.get(rule.label, 0) for rule in keymap.rules},
        target_known=target is not None,
    )
    if target is not None:
        _compare_with_target(report, target)
    return report


def _compare_with_target(report: KeymapReport, target: TargetSpecs) -> None:
    produced = {item.target for item in report.mapped}
    report.missing = [key for key in target if key not in produced]
    for item in report.mapped:
        if item.target not in target:
            report.unused.append(item)
            continue
        expected_shape, expected_dtype = target[item.target]
        if item.shape is None or expected_shape is None:
            continue
        if item.shape != expected_shape:
            report.shape_mismatches.append(ShapeMismatch(item.target, item.sources, item.shape, expected_shape))
        elif item.dtype != _dtype_name(expected_dtype):
            report.dtype_mismatches.append(
                DtypeMismatch(item.target, item.sources, item.dtype or "", _dtype_name(expected_dtype) or "")
            )
