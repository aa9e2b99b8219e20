"""Reading keymap rules from the dicts and lists that YAML files contain."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from recoverkit.errors import KeymapError
from recoverkit.state_dict.keymap.rules import (
    ConcatRule,
    DropRule,
    PrefixRule,
    RegexRule,
    RenameRule,
    ReshapeRule,
    Rule,
    SplitRule,
    SubstringRule,
    TransposeRule,
)

__all__ = ["RULE_KINDS", "parse_rule"]

#: Rule kind -> (required fields, optional fields) inside the kind's mapping.
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rename": (("from", "to"), ()),
    "prefix": (("from", "to"), ("when",)),
    "substring": (("from", "to"), ()),
    "regex": (("pattern", "to"), ()),
    "drop": ((), ("key", "prefix", "regex")),
    "concat": (("from", "to"), ("dim",)),
    "split": (("from", "to"), ("dim", "sizes")),
    "transpose": (("from",), ("to", "dims")),
    "reshape": (("from", "shape"), ("to",)),
}

_BUILDERS: dict[str, Callable[[dict[str, Any], str], Rule]] = {
    "rename": lambda f, label: RenameRule(f["from"], f["to"], label),
    "prefix": lambda f, label: PrefixRule(f["from"], f["to"], label, when=f.get("when", "always")),
    "substring": lambda f, label: SubstringRule(f["from"], f["to"], label),
    "regex": lambda f, label: RegexRule(f["pattern"], f["to"], label),
    "drop": lambda f, label: DropRule(label, key=f.get("key"), prefix=f.get("prefix"), regex=f.get("regex")),
    "concat": lambda f, label: ConcatRule(f["from"], f["to"], label, dim=f.get("dim", 0)),
    "split": lambda f, label: SplitRule(f["from"], f["to"], label, dim=f.get("dim", 0), sizes=f.get("sizes")),
    "transpose": lambda f, label: TransposeRule(f["from"], label, target=f.get("to"), dims=f.get("dims", (0, 1))),
    "reshape": lambda f, label: ReshapeRule(f["from"], f["shape"], label, target=f.get("to")),
}

#: The rule kinds a keymap file may use, in the order the docs list them.
RULE_KINDS: tuple[str, ...] = tuple(_FIELDS)


def parse_rule(spec: Any, keymap_name: str, index: int) -> Rule:
    """Build one rule from its YAML form.

    A rule is a mapping with exactly one rule kind as key, whose value contains
    the kind's fields, and optionally ``name``, a label for reports and
    errors: ``{"name": "strip-bert", "prefix": {"from": "bert.", "to": ""}}``.
    A drop rule may give its key template directly: ``{"drop": "pooler.dense.bias"}``.

    Parameters
    ----------
    spec : mapping
        The rule.
    keymap_name : str
        The keymap the rule belongs to, for its default label.
    index : int
        The rule's position in the keymap, counted from 1, for its default label.

    Returns
    -------
    Rule
        The rule, labelled ``name`` or ``"<keymap> rule <index> (<kind>)"``.

    Raises
    ------
    KeymapError
        If the rule has no kind or several, an unknown or missing field, or
        a field of the wrong type.
    """
    where = f"rule {index} of keymap {keymap_name!r}"
    if not isinstance(spec, Mapping):
        raise KeymapError(
            f"Invalid {where}: expected a mapping such as "
            f"{{rename: {{from: old.key, to: new.key}}}}, got {type(spec).__name__} {spec!r}."
        )
    kinds = [key for key in spec if key in _FIELDS]
    unknown = [key for key in spec if key not in _FIELDS and key != "name"]
    if unknown or len(kinds) != 1:
        problem = f"unknown key(s) {unknown}" if unknown else f"{len(kinds)} rule kinds {kinds}"
        raise KeymapError(
            f"Invalid {where}: {problem}. A rule has exactly one of {list(RULE_KINDS)}, "
            "plus an optional 'name'."
        )
    kind = kinds[0]
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise KeymapError(f"Invalid {where}: 'name' must be a string, got {name!r}.")
    label = name if name else f"{keymap_name} rule {index} ({kind})"
    fields = _fields_of(kind, spec[kind], label)
    return _BUILDERS[kind](fields, label)


def _fields_of(kind: str, value: Any, label: str) -> dict[str, Any]:
    if kind == "drop" and isinstance(value, str):
        return {"key": value}
    required, optional = _FIELDS[kind]
    if not isinstance(value, Mapping):
        raise KeymapError(
            f"Invalid keymap rule {label!r}: the value of {kind!r} must be a mapping "
            f"with fields {list(required + optional)}, got {type(value).__name__} {value!r}."
        )
    missing = [field for field in required if field not in value]
    unknown = [field for field in value if field not in required + optional]
    if missing or unknown:
        raise KeymapError(
            f"Invalid keymap rule {label!r}: {kind} has missing field(s) {missing} and "
            f"unknown field(s) {unknown}. Required: {list(required)}; optional: {list(optional)}."
        )
    return dict(value)
