"""The rule kinds of a keymap: renames, drops and tensor transforms.

Every rule reads the whole state dict being mapped and returns a list of
:class:`Change` objects. A rule never changes the state dict itself, so
:func:`rebuild_state` can check for collisions before anything moves.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from recoverkit.errors import KeymapError
from recoverkit.state_dict.keymap.state import (
    Change,
    Entry,
    RuleContext,
    describe_value,
)
from recoverkit.state_dict.keymap.templates import KeyTemplate

__all__ = [
    "ConcatRule",
    "DropRule",
    "PrefixRule",
    "RegexRule",
    "RenameRule",
    "ReshapeRule",
    "Rule",
    "SplitRule",
    "SubstringRule",
    "TransposeRule",
    "describe_change",
]

logger = logging.getLogger(__name__)


class Rule(ABC):
    """One step of a keymap.

    ``label`` names the rule in reports and error messages.
    """

    kind: ClassVar[str]

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}: {self.describe()}>"

    @abstractmethod
    def changes(self, state: dict[str, Entry], context: RuleContext) -> list[Change]:
        """Return the changes the rule makes to ``state``, or an empty list if it matches nothing."""

    @abstractmethod
    def describe(self) -> str:
        """Return a one-line summary of the rule for reports."""

    @abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """Return the rule in the YAML syntax that :func:`parse_rule` reads."""


# Renames


class _KeyRenameRule(Rule):
    """A rule that moves single keys to new names and leaves their values alone."""

    @abstractmethod
    def new_key(self, key: str) -> str | None:
        """Return the new name of ``key``, or None if the rule does not match it."""

    def changes(self, state: dict[str, Entry], context: RuleContext) -> list[Change]:
        result = []
        for key, entry in state.items():
            new = self.new_key(key)
            if new is not None and new != key:
                result.append(Change((key,), [(new, entry.changed_by(self.label))]))
        return result


class RenameRule(_KeyRenameRule):
    """Rename the keys that match a template exactly. Without placeholders it renames one key.

    YAML: ``rename: {from: "encoder.layer.{n}.output.dense.{param}", to: "layers.{n}.linear2.{param}"}``.
    """

    kind = "rename"

    def __init__(self, source: str, target: str, label: str) -> None:
        super().__init__(label)
        self.source = KeyTemplate(source)
        self.target = KeyTemplate(target)
        self.target.check_filled_by(self.source, f"rule {label!r}")

    def new_key(self, key: str) -> str | None:
        bindings = self.source.match(key)
        return None if bindings is None else self.target.fill(bindings)

    def describe(self) -> str:
        return f"rename {self.source.text} -> {self.target.text}"

    def to_spec(self) -> dict[str, Any]:
        return {"rename": {"from": self.source.text, "to": self.target.text}}


class PrefixRule(_KeyRenameRule):
    """Replace the prefix ``source`` of every key that starts with it by ``target``.

    With ``when="every_key"`` the rule changes all keys or none: it applies
    only if every key starts with ``source``. If the target state dict is
    known, it also applies only when the renamed keys match more target keys
    than the current ones (on a tie: when the prefix is being removed and
    not every target key starts with it). Without a target, a rule that adds
    a prefix (empty ``source``) never applies in this mode. This is how the
    built-in ``ddp`` keymap leaves a model that really has a child named
    ``module`` alone.

    YAML: ``prefix: {from: "module.", to: "", when: every_key}``.
    """

    kind = "prefix"
    WHEN_VALUES = ("always", "every_key")

    def __init__(self, source: str, target: str, label: str, when: str = "always") -> None:
        super().__init__(label)
        _check_string(source, "from", label)
        _check_string(target, "to", label)
        if when not in self.WHEN_VALUES:
            raise KeymapError(
                f"Invalid keymap rule {label!r}: when={when!r}. Use one of {list(self.WHEN_VALUES)}."
            )
        self.source = source
        self.target = target
        self.when = when

    def new_key(self, key: str) -> str | None:
        if not key.startswith(self.source):
            return None
        return self.target + key[len(self.source) :]

    def changes(self, state: dict[str, Entry], context: RuleContext) -> list[Change]:
        if self.when == "every_key" and not self._applies_to_every_key(list(state), context):
            return []
        return super().changes(state, context)

    def _applies_to_every_key(self, keys: list[str], context: RuleContext) -> bool:
        if not keys or not all(key.startswith(self.source) for key in keys):
            return False
        if self.target and all(key.startswith(self.target) for key in keys):
            return False
        if context.target is None:
            return bool(self.source)
        current = sum(key in context.target for key in keys)
        renamed = sum(self.new_key(key) in context.target for key in keys)
        if renamed != current:
            return renamed > current
        return bool(self.source) and not all(key.startswith(self.source) for key in context.target)

    def describe(self) -> str:
        mode = " (every key or none)" if self.when == "every_key" else ""
        return f"prefix {self.source!r} -> {self.target!r}{mode}"

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"from": self.source, "to": self.target}
        if self.when != "always":
            spec["when"] = self.when
        return {"prefix": spec}


class SubstringRule(_KeyRenameRule):
    """Replace every occurrence of a substring in every key, as SpeechBrain's mapping does.

    A match inside a longer module name is replaced too: ``.atn`` also
    turns ``.atn_proj`` into ``.attn_proj``. Unlike SpeechBrain's mapping, a
    key that lands on an existing key raises instead of replacing it.

    YAML: ``substring: {from: ".atn", to: ".attn"}``.
    """

    kind = "substring"

    def __init__(self, source: str, target: str, label: str) -> None:
        super().__init__(label)
        _check_string(source, "from", label)
        _check_string(target, "to", label)
        if not source:
            raise KeymapError(
                f"Invalid keymap rule {label!r}: an empty 'from' substring matches "
                "everywhere. Use a prefix rule to add text at the start of keys."
            )
        self.source = source
        self.target = target

    def new_key(self, key: str) -> str | None:
        return key.replace(self.source, self.target) if self.source in key else None

    def describe(self) -> str:
        return f"substring {self.source!r} -> {self.target!r}"

    def to_spec(self) -> dict[str, Any]:
        return {"substring": {"from": self.source, "to": self.target}}


class RegexRule(_KeyRenameRule):
    """Rename keys that match a regular expression as a whole.

    The new name is ``to`` with group references (``\\1``, ``\\g<name>``)
    expanded, as in :meth:`re.Match.expand`.

    YAML (single quotes keep the backslashes):
    ``regex: {pattern: '^bert\\.(.*)$', to: '\\1'}``.
    """

    kind = "regex"

    def __init__(self, pattern: str, target: str, label: str) -> None:
        super().__init__(label)
        _check_string(pattern, "pattern", label)
        _check_string(target, "to", label)
        self.pattern = _compile_regex(pattern, label)
        self.target = target
        self._check_group_references()

    def _check_group_references(self) -> None:
        probe = re.compile("(?:" + self.pattern.pattern + ")|")
        try:
            probe.fullmatch("").expand(self.target)  # type: ignore[union-attr]
        except (re.error, IndexError) as error:
            raise KeymapError(
                f"Invalid keymap rule {self.label!r}: replacement {self.target!r} refers "
                f"to a group that pattern {self.pattern.pattern!r} does not have ({error})."
            ) from error

    def new_key(self, key: str) -> str | None:
        found = self.pattern.fullmatch(key)
        return None if found is None else found.expand(self.target)

    def describe(self) -> str:
        return f"regex {self.pattern.pattern!r} -> {self.target!r}"

    def to_spec(self) -> dict[str, Any]:
        return {"regex": {"pattern": self.pattern.pattern, "to": self.target}}


# Drops


class DropRule(Rule):
    """Remove keys from the state dict: by template, by prefix or by regular expression.

    YAML: ``drop: "embeddings.position_ids"``, ``drop: {prefix: "pooler."}``
    or ``drop: {regex: '.*\\.num_batches_tracked$'}``.
    """

    kind = "drop"
    MATCHERS = ("key", "prefix", "regex")

    def __init__(self, label: str, key: str | None = None, prefix: str | None = None, regex: str | None = None) -> None:
        super().__init__(label)
        matchers = {name: value for name, value in (("key", key), ("prefix", prefix), ("regex", regex)) if value is not None}
        if len(matchers) != 1:
            raise KeymapError(
                f"Invalid keymap rule {label!r}: a drop rule needs exactly one of "
                f"{list(self.MATCHERS)}, got {sorted(matchers) or 'none'}."
            )
        (self.matcher, self.text), = matchers.items()
        _check_string(self.text, self.matcher, label)
        self._template = KeyTemplate(self.text) if self.matcher == "key" else None
        self._regex = _compile_regex(self.text, label) if self.matcher == "regex" else None

    def matches(self, key: str) -> bool:
        """Return True if the rule drops ``key``."""
        if self._template is not None:
            return self._template.match(key) is not None
        if self._regex is not None:
            return self._regex.fullmatch(key) is not None
        return key.startswith(self.text)

    def changes(self, state: dict[str, Entry], context: RuleContext) -> list[Change]:
        result = []
        for key, entry in state.items():
            if self.matches(key):
                for source in entry.sources:
                    context.dropped[source] = self.label
                result.append(Change((key,), []))
        return result

    def describe(self) -> str:
        return f"drop {self.matcher} {self.text!r}"

    def to_spec(self) -> dict[str, Any]:
        if self.matcher == "key":
            return {"drop": self.text}
        return {"drop": {self.matcher: self.text}}


# Tensor transforms


class ConcatRule(Rule):
    """Concatenate several tensors into one, such as separate q, k, v projections into a fused one.

    The first source template finds the groups. The other templates are
    filled with its placeholder values, and every key of a group must
    exist. The tensors must have equal shapes except along ``dim``.

    YAML::

        concat:
          from: ["layer.{n}.query.{p}", "layer.{n}.key.{p}", "layer.{n}.value.{p}"]
          to: "layers.{n}.self_attn.in_proj_{p}"
          dim: 0
    """

    kind = "concat"

    def __init__(self, sources: Sequence[str], target: str, label: str, dim: int = 0) -> None:
        super().__init__(label)
        if isinstance(sources, str) or not isinstance(sources, Sequence) or len(sources) < 2:
            raise KeymapError(
                f"Invalid keymap rule {label!r}: 'from' must be a list of at least two "
                f"key templates, got {sources!r}."
            )
        self.sources = [KeyTemplate(text) for text in sources]
        self.target = KeyTemplate(target)
        self.dim = _check_int(dim, "dim", label)
        for template in [*self.sources[1:], self.target]:
            template.check_filled_by(self.sources[0], f"rule {label!r}")

    def changes(self, state: dict[str, Entry], context: RuleContext) -> list[Change]:
        result = []
        for key in state:
            bindings = self.sources[0].match(key)
            if bindings is None:
                continue
            keys = [template.fill(bindings) for template in self.sources]
            absent = [name for name in keys if name not in state]
            if absent:
                raise KeymapError(
                    f"Keymap rule {self.label!r} found {key!r} but not {absent}, which it "
                    f"needs to build {self.target.fill(bindings)!r}. Check the 'from' "
                    "templates against the source keys."
                )
            entries = [state[name] for name in keys]
            merged = Entry(
                self._concatenate(keys, entries),
                tuple(source for entry in entries for source in entry.sources),
                tuple(dict.fromkeys(rule for entry in entries for rule in entry.rules)) + (self.label,),
            )
            result.append(Change(tuple(keys), [(self.target.fill(bindings), merged)]))
        return result

    def _concatenate(self, keys: list[str], entries: list[Entry]) -> torch.Tensor:
        values = [_require_tensor(entry.value, key, self.label) for key, entry in zip(keys, entries)]
        shape = self._concatenated_shape(keys, values)
        if all(value.device.type == "meta" for value in values):
            # torch.cat on meta tensors loads torch's meta kernels on first use, which
            # takes seconds; a dry run needs only the shape and dtype.
            dtype = values[0].dtype
            for value in values[1:]:
                dtype = torch.promote_types(dtype, value.dtype)
            return torch.empty(shape, dtype=dtype, device="meta")
        return torch.cat(values, dim=self.dim)

    def _concatenated_shape(self, keys: list[str], values: list[torch.Tensor]) -> list[int]:
        ndim = values[0].dim()
        valid = ndim > 0 and -ndim <= self.dim < ndim
        dim = self.dim % ndim if valid else 0
        for value in values[1:]:
            same_rank = value.dim() == ndim
            valid = valid and same_rank and all(
                value.shape[axis] == values[0].shape[axis] for axis in range(ndim) if axis != dim
            )
        if not valid:
            shapes = ", ".join(f"{key!r} {describe_value(value)}" for key, value in zip(keys, values))
            raise KeymapError(
                f"Keymap rule {self.label!r} cannot concatenate along dim {self.dim}: {shapes}. "
                "The tensors must have the same number of dimensions and equal sizes "
                "except along 'dim'."
            )
        shape = list(values[0].shape)
        shape[dim] = sum(value.shape[dim] for value in values)
        return shape

    def describe(self) -> str:
        joined = " + ".join(template.text for template in self.sources)
        return f"concat {joined} -> {self.target.text} (dim {self.dim})"

    def to_spec(self) -> dict[str, Any]:
        return {"concat": {"from": [t.text for t in self.sources], "to": self.target.text, "dim": self.dim}}


class SplitRule(Rule):
    """Split one tensor into several along ``dim``, such as a fused q/k/v projection into three.

    Without ``sizes`` the tensor is cut into equal parts, one per target.

    YAML: ``split: {from: "attn.{n}.in_proj_weight", to: ["q.{n}.weight", "k.{n}.weight", "v.{n}.weight"], dim: 0}``.
    """

    kind = "split"

    def __init__(
        self,
        source: str,
        targets: Sequence[str],
        label: str,
        dim: int = 0,
        sizes: Sequence[int] | None = None,
    ) -> None:
        super().__init__(label)
        if isinstance(targets, str) or not isinstance(targets, Sequence) or len(targets) < 2:
            raise KeymapError(
                f"Invalid keymap rule {label!r}: 'to' must be a list of at least two key "
                f"templates, got {targets!r}."
            )
        self.source = KeyTemplate(source)
        self.targets = [KeyTemplate(text) for text in targets]
        self.dim = _check_int(dim, "dim", label)
        self.sizes = None if sizes is None else [_check_int(size, "sizes", label) for size in sizes]
        if self.sizes is not None and len(self.sizes) != len(self.targets):
            raise KeymapError(
                f"Invalid keymap rule {label!r}: {len(self.sizes)} sizes for "
                f"{len(self.targets)} targets. Give one size per target."
            )
        for template in self.targets:
            template.check_filled_by(self.source, f"rule {label!r}")

    def changes(self, state: dict[str, Entry], context: RuleContext) -> list[Change]:
        result = []
        for key, entry in state.items():
            bindings = self.source.match(key)
            if bindings is None:
                continue
            pieces = self._split(key, _require_tensor(entry.value, key, self.label))
            produced = [
                (template.fill(bindings), entry.changed_by(self.label, piece))
                for template, piece in zip(self.targets, pieces)
            ]
            result.append(Change((key,), produced))
        return result

    def _split(self, key: str, value: torch.Tensor) -> list[torch.Tensor]:
        if not -value.dim() <= self.dim < max(value.dim(), 1):
            raise KeymapError(
                f"Keymap rule {self.label!r} cannot split {key!r} ({describe_value(value)}) "
                f"along dim {self.dim}: the tensor has {value.dim()} dimension(s)."
            )
        length = value.shape[self.dim]
        sizes = self.sizes
        if sizes is None:
            if length % len(self.targets):
                raise KeymapError(
                    f"Keymap rule {self.label!r} cannot split {key!r} ({describe_value(value)}) "
                    f"into {len(self.targets)} equal parts along dim {self.dim}: {length} is "
                    "not divisible. Give 'sizes' explicitly."
                )
            sizes = [length // len(self.targets)] * len(self.targets)
        elif sum(sizes) != length:
            raise KeymapError(
                f"Keymap rule {self.label!r} cannot split {key!r} ({describe_value(value)}) "
                f"into sizes {sizes} along dim {self.dim}: they sum to {sum(sizes)}, not {length}."
            )
        # Copy so that each piece owns its memory: safetensors rejects tensors that share it.
        return [_owning_copy(piece) for piece in torch.split(value, sizes, dim=self.dim)]

    def describe(self) -> str:
        joined = ", ".join(template.text for template in self.targets)
        return f"split {self.source.text} -> {joined} (dim {self.dim})"

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"from": self.source.text, "to": [t.text for t in self.targets], "dim": self.dim}
        if self.sizes is not None:
            spec["sizes"] = list(self.sizes)
        return {"split": spec}


class _ValueTransformRule(Rule):
    """A rule that changes the value of each matching key and may rename it."""

    def __init__(self, source: str, target: str | None, label: str) -> None:
        super().__init__(label)
        self.source = KeyTemplate(source)
        self.target = KeyTemplate(target) if target is not None else None
        if self.target is not None:
            self.target.check_filled_by(self.source, f"rule {label!r}")

    @abstractmethod
    def transform(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """Return the new value of ``key``."""

    def changes(self, state: dict[str, Entry], context: RuleContext) -> list[Change]:
        result = []
        for key, entry in state.items():
            bindings = self.source.match(key)
            if bindings is None:
                continue
            new_value = self.transform(key, _require_tensor(entry.value, key, self.label))
            new_key = key if self.target is None else self.target.fill(bindings)
            result.append(Change((key,), [(new_key, entry.changed_by(self.label, new_value))]))
        return result

    def _base_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"from": self.source.text}
        if self.target is not None:
            spec["to"] = self.target.text
        return spec

    def _rename_text(self) -> str:
        return "" if self.target is None else f" -> {self.target.text}"


class TransposeRule(_ValueTransformRule):
    """Swap two dimensions of each matching tensor, such as a Conv1D weight stored as (in, out).

    YAML: ``transpose: {from: "h.{n}.mlp.c_fc.weight", to: "layers.{n}.linear1.weight", dims: [0, 1]}``
    (``to`` is optional and ``dims`` defaults to ``[0, 1]``).
    """

    kind = "transpose"

    def __init__(self, source: str, label: str, target: str | None = None, dims: Sequence[int] = (0, 1)) -> None:
        super().__init__(source, target, label)
        if isinstance(dims, str) or not isinstance(dims, Sequence) or len(dims) != 2:
            raise KeymapError(f"Invalid keymap rule {label!r}: 'dims' must be two integers, got {dims!r}.")
        self.dims = (_check_int(dims[0], "dims", label), _check_int(dims[1], "dims", label))

    def transform(self, key: str, value: torch.Tensor) -> torch.Tensor:
        try:
            return _owning_copy(value.transpose(*self.dims))
        except IndexError as error:
            raise KeymapError(
                f"Keymap rule {self.label!r} cannot transpose dims {list(self.dims)} of {key!r} "
                f"({describe_value(value)}): the tensor has {value.dim()} dimension(s)."
            ) from error

    def describe(self) -> str:
        return f"transpose {self.source.text}{self._rename_text()} (dims {list(self.dims)})"

    def to_spec(self) -> dict[str, Any]:
        return {"transpose": {**self._base_spec(), "dims": list(self.dims)}}


class ReshapeRule(_ValueTransformRule):
    """Give each matching tensor a new shape with the same number of elements (-1 infers one size).

    YAML: ``reshape: {from: "pos_embed", shape: [-1, 768]}`` (``to`` is optional).
    """

    kind = "reshape"

    def __init__(self, source: str, shape: Sequence[int], label: str, target: str | None = None) -> None:
        super().__init__(source, target, label)
        if isinstance(shape, str) or not isinstance(shape, Sequence):
            raise KeymapError(f"Invalid keymap rule {label!r}: 'shape' must be a list of integers, got {shape!r}.")
        self.shape = [_check_int(size, "shape", label) for size in shape]

    def transform(self, key: str, value: torch.Tensor) -> torch.Tensor:
        try:
            return _owning_copy(value.reshape(self.shape))
        except RuntimeError as error:
            raise KeymapError(
                f"Keymap rule {self.label!r} cannot reshape {key!r} ({describe_value(value)}) "
                f"to {self.shape}: the number of elements differs."
            ) from error

    def describe(self) -> str:
        return f"reshape {self.source.text}{self._rename_text()} to {self.shape}"

    def to_spec(self) -> dict[str, Any]:
        return {"reshape": {**self._base_spec(), "shape": list(self.shape)}}


# Checks shared by the rules


def _check_string(value: Any, field: str, label: str) -> str:
    if not isinstance(value, str):
        raise KeymapError(
            f"Invalid keymap rule {label!r}: {field!r} must be a string, got "
            f"{type(value).__name__} {value!r}."
        )
    return value


def _check_int(value: Any, field: str, label: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeymapError(
            f"Invalid keymap rule {label!r}: {field!r} must be an integer, got "
            f"{type(value).__name__} {value!r}."
        )
    return value


def _compile_regex(pattern: str, label: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise KeymapError(
            f"Invalid keymap rule {label!r}: pattern {pattern!r} is not a valid regular "
            f"expression ({error})."
        ) from error


def _owning_copy(value: torch.Tensor) -> torch.Tensor:
    """Return a contiguous copy of ``value``, or ``value`` itself if it is a meta tensor (a dry run).

    Copying a strided meta tensor loads torch's meta kernels on first use,
    which takes seconds, and a dry run needs only the shape.
    """
    if value.device.type == "meta":
        return value
    return value.clone(memory_format=torch.contiguous_format)


def _require_tensor(value: Any, key: str, label: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise KeymapError(
            f"Keymap rule {label!r} can only transform tensors, but {key!r} is "
            f"{describe_value(value)}. Drop or rename that key instead."
        )
    return value


def describe_change(label: str, change: Change) -> str:
    """Return a one-line description of one change, for debug logs."""
    produced = ", ".join(key for key, _entry in change.produced) or "(dropped)"
    return f"{label}: {', '.join(change.consumed)} -> {produced}"

