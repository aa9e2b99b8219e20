"""Keymaps: YAML tables of rules that rename, drop and transform state-dict entries.

A keymap file is an ordered list of rules (exact or template rename, prefix
rename, substring rename, regular expression, drop, concatenate, split,
transpose, reshape). :meth:`Keymap.plan` runs it as a dry run and returns a
:class:`KeymapReport`; :meth:`Keymap.apply` checks that report and maps the
tensors. See ``docs/keymaps.md`` for the rule syntax.
"""

from recoverkit.state_dict.keymap.core import BUILTIN_KEYMAPS, Keymap, resolve_keymap
from recoverkit.state_dict.keymap.hooks import keymap_load_hook, load_state_dict_with_keymap
from recoverkit.state_dict.keymap.parse import RULE_KINDS, parse_rule
from recoverkit.state_dict.keymap.report import (
    DtypeMismatch,
    KeymapReport,
    MappedKey,
    ShapeMismatch,
)
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
from recoverkit.state_dict.keymap.templates import KeyTemplate

__all__ = [
    "BUILTIN_KEYMAPS",
    "RULE_KINDS",
    "ConcatRule",
    "DropRule",
    "DtypeMismatch",
    "KeyTemplate",
    "Keymap",
    "KeymapReport",
    "MappedKey",
    "PrefixRule",
    "RegexRule",
    "RenameRule",
    "ReshapeRule",
    "Rule",
    "ShapeMismatch",
    "SplitRule",
    "SubstringRule",
    "TransposeRule",
    "keymap_load_hook",
    "load_state_dict_with_keymap",
    "parse_rule",
    "resolve_keymap",
]
