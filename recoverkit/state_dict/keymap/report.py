"""The dry-run report of a keymap: where each key went, and what does not fit the target."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from recoverkit.errors import KeymapError

__all__ = ["DtypeMismatch", "KeymapReport", "MappedKey", "ShapeMismatch"]

logger = logging.getLogger(__name__)

Shape = tuple[int, ...]

#: How many keys each section of a formatted report and of an error message lists.
_LISTED_KEYS = 20


@dataclass(frozen=True)
class MappedKey:
    """One key of the mapped state dict: its source keys, the rules that made it, its shape and dtype.

    ``shape`` and ``dtype`` are None for values that are not tensors.
    """

    target: str
    sources: tuple[str, ...]
    rules: tuple[str, ...]
    shape: Shape | None
    dtype: str | None

    @property
    def renamed(self) -> bool:
        """True if any rule changed the key or its value."""
        return bool(self.rules)

    def origin(self) -> str:
        """Return the source key, or the source keys joined by ``+``."""
        return " + ".join(self.sources)


@dataclass(frozen=True)
class ShapeMismatch:
    """A mapped key whose shape differs from the same key in the target."""

    target: str
    sources: tuple[str, ...]
    shape: Shape
    expected: Shape


@dataclass(frozen=True)
class DtypeMismatch:
    """A mapped key whose dtype differs from the same key in the target.

    ``load_state_dict`` casts it, so this is a warning, not an error.
    """

    target: str
    sources: tuple[str, ...]
    dtype: str
    expected: str


@dataclass
class KeymapReport:
    """The outcome of a keymap on one state dict, computed before any tensor is loaded.

    ``unused`` and ``missing`` are empty and ``target_known`` is False when
    no target was given: without a target only the rules can be checked.
    """

    keymap: str
    mapped: list[MappedKey]
    dropped: dict[str, str] = field(default_factory=dict)
    unused: list[MappedKey] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    shape_mismatches: list[ShapeMismatch] = field(default_factory=list)
    dtype_mismatches: list[DtypeMismatch] = field(default_factory=list)
    rule_matches: dict[str, int] = field(default_factory=dict)
    target_known: bool = False

    @property
    def renamed(self) -> list[MappedKey]:
        """The mapped keys that some rule changed."""
        return [item for item in self.mapped if item.renamed]

    @property
    def unchanged(self) -> list[MappedKey]:
        """The mapped keys that no rule changed."""
        return [item for item in self.mapped if not item.renamed]

    @property
    def source_count(self) -> int:
        """The number of keys in the source state dict."""
        sources = {source for item in self.mapped for source in item.sources}
        return len(sources | set(self.dropped))

    def errors(self, strict: bool = True) -> list[str]:
        """Return one message per problem that makes the load fail.

        Shape mismatches are always errors. Unused source keys and missing
        target keys are errors only if ``strict``.
        """
        problems = []
        if self.shape_mismatches:
            listed = "; ".join(
                f"{item.target!r} from {' + '.join(item.sources)}: shape {item.shape}, "
                f"target expects {item.expected}"
                for item in self.shape_mismatches[:_LISTED_KEYS]
            )
            problems.append(f"{len(self.shape_mismatches)} shape mismatch(es): {listed}")
        if strict:
            problems.extend(self._unfit_messages())
        return problems

    def warnings(self, strict: bool = True) -> list[str]:
        """Return one message per problem that lets the load go on.

        Dtype mismatches always, and unused and missing keys when not ``strict``.
        """
        notes = []
        if not strict:
            notes.extend(self._unfit_messages())
        if self.dtype_mismatches:
            listed = "; ".join(
                f"{item.target!r}: {item.dtype}, target has {item.expected}"
                for item in self.dtype_mismatches[:_LISTED_KEYS]
            )
            notes.append(
                f"{len(self.dtype_mismatches)} dtype mismatch(es), cast on load: {listed}"
            )
        return notes

    def _unfit_messages(self) -> list[str]:
        messages = []
        if self.unused:
            listed = ", ".join(_unused_text(item) for item in self.unused[:_LISTED_KEYS])
            messages.append(
                f"{len(self.unused)} source key(s) unused, the target has no such key: "
                f"{listed}{_more(self.unused)}"
            )
        if self.missing:
            listed = ", ".join(self.missing[:_LISTED_KEYS])
            messages.append(
                f"{len(self.missing)} target key(s) missing, no source key maps to them: "
                f"{listed}{_more(self.missing)}"
            )
        return messages

    def check(self, strict: bool = True, origin: str = "") -> None:
        """Raise if the mapped state dict cannot be loaded, and log the warnings otherwise.

        Parameters
        ----------
        strict : bool
            Whether unused source keys and missing target keys are errors.
        origin : str
            Where the state dict comes from, such as a file path, for the messages.

        Raises
        ------
        KeymapError
            If :meth:`errors` returns any message.
        """
        where = f" to {origin}" if origin else ""
        problems = self.errors(strict)
        if problems:
            hint = (
                " Fix the keymap, or load non-strictly to accept unused and missing keys."
                if strict and (self.unused or self.missing)
                else ""
            )
            raise KeymapError(
                f"Cannot apply keymap {self.keymap!r}{where}: " + " ".join(f"{p}." for p in problems) + hint
            )
        for note in self.warnings(strict):
            logger.warning("Keymap %r%s: %s", self.keymap, where, note)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain lists and dicts, ready for JSON."""
        return asdict(self)

    def format(self, max_keys: int | None = None) -> str:
        """Return the report as readable text, one section per kind of outcome.

        Parameters
        ----------
        max_keys : int, optional
            How many keys to list per section; None lists all.
        """
        lines = [
            f"Keymap {self.keymap!r}: {self.source_count} source keys -> {len(self.mapped)} keys",
            f"  renamed or transformed: {len(self.renamed)}, unchanged: {len(self.unchanged)}, "
            f"dropped: {len(self.dropped)}",
        ]
        if self.target_known:
            lines.append(
                f"  against the target: {len(self.unused)} unused, {len(self.missing)} missing, "
                f"{len(self.shape_mismatches)} shape and {len(self.dtype_mismatches)} dtype mismatch(es)"
            )
        else:
            lines.append("  no target given: unused and missing keys were not checked")
        lines += _section("Renamed or transformed", self.renamed, _mapped_text, max_keys)
        lines += _section("Unchanged", self.unchanged, _mapped_text, max_keys)
        lines += _section("Dropped", list(self.dropped.items()), lambda item: f"{item[0]}  [{item[1]}]", max_keys)
        if self.target_known:
            lines += _section("Unused source keys", self.unused, _unused_text, max_keys)
            lines += _section("Missing target keys", self.missing, str, max_keys)
            lines += _section(
                "Shape mismatches",
                self.shape_mismatches,
                lambda item: f"{item.target}: {_shape_text(item.shape)}, target {_shape_text(item.expected)}",
                max_keys,
            )
            lines += _section(
                "Dtype mismatches",
                self.dtype_mismatches,
                lambda item: f"{item.target}: {item.dtype}, target {item.expected}",
                max_keys,
            )
        idle = [label for label, count in self.rule_matches.items() if count == 0]
        lines += _section("Rules that matched no key", idle, str, max_keys)
        return "\n".join(lines)


def _section(title: str, items: list[Any], render: Any, max_keys: int | None) -> list[str]:
    if not items:
        return []
    listed = items if max_keys is None else items[:max_keys]
    lines = ["", f"{title} ({len(items)}):"]
    lines += [f"  {render(item)}" for item in listed]
    if len(listed) < len(items):
        lines.append(f"  ... and {len(items) - len(listed)} more")
    return lines


def _shape_text(shape: Shape | None) -> str:
    return "-" if shape is None else str(tuple(shape))


def _mapped_text(item: MappedKey) -> str:
    value = f"{_shape_text(item.shape)} {item.dtype or ''}".rstrip()
    if not item.renamed:
        return f"{item.target}  {value}"
    rules = ", ".join(item.rules)
    return f"{item.origin()} -> {item.target}  {value}  [{rules}]"


def _unused_text(item: MappedKey) -> str:
    if item.sources == (item.target,):
        return item.target
    return f"{item.target} (from {item.origin()})"


def _more(items: list[Any]) -> str:
    return f" and {len(items) - _LISTED_KEYS} more" if len(items) > _LISTED_KEYS else ""
